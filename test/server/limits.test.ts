import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawRequest, sleep, startTestServer, waitFor, type TestServer } from '../helpers.ts';

describe('limits and timeouts', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxBodySize: 1024, maxHeaderSize: 2048, headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300, maxConnections: 20 });
  });
  after(() => t.close());

  it('refuses a declared oversized body with 413 before reading it', async () => {
    const res = await rawRequest(t.port, 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n');
    assert.match(res, /^HTTP\/1\.1 413 /);
    assert.match(res, /--max-body-size/);
    assert.match(res, /Connection: close/i);
  });

  it('refuses a streamed oversized body with 413', async () => {
    const chunk = 'x'.repeat(600);
    const payload = `POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`;
    const res = await rawRequest(t.port, payload);
    assert.match(res, /^HTTP\/1\.1 413 /);
  });

  it('accepts a body at the limit', async () => {
    const res = await fetch(t.url, { method: 'POST', body: 'y'.repeat(1024) });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^BodyBytes: 1024$/m);
  });

  it('answers oversized headers with 431', async () => {
    const res = await rawRequest(t.port, `GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    assert.match(res, /^HTTP\/1\.1 431 /);
    assert.match(res, /--max-header-size/);
  });

  it('accepts headers above Node\'s old 16 KiB default when configured', async () => {
    const big = await startTestServer();
    try {
      const res = await fetch(big.url, { headers: { 'x-big': 'a'.repeat(30_000) } });
      assert.equal(res.status, 200);
    } finally {
      await big.close();
    }
  });

  it('answers a slow request head with 408', async () => {
    const res = await rawRequest(t.port, 'GET / HTTP/1.1\r\nHost: h\r\n', 3000);
    assert.match(res, /^HTTP\/1\.1 408 /);
  });

  it('answers a slow body with 408', async () => {
    const res = await rawRequest(t.port, 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc', 3000);
    assert.match(res, /^HTTP\/1\.1 408 /);
  });

  const malformed: [string, string][] = [
    ['a garbage request line', 'HELLO\r\n\r\n'],
    ['a bad method', 'G@T / HTTP/1.1\r\nHost: h\r\n\r\n'],
    ['a bad version', 'GET / HTTP/9.9\r\nHost: h\r\n\r\n'],
    ['a header without colon', 'GET / HTTP/1.1\r\nHost: h\r\nBroken\r\n\r\n'],
    ['a bad content length', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n'],
    ['conflicting framing', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc'],
    ['a missing Host', 'GET / HTTP/1.1\r\n\r\n'],
  ];
  for (const [name, payload] of malformed) {
    it(`answers ${name} with 400 and keeps serving`, async () => {
      const res = await rawRequest(t.port, payload);
      assert.match(res, /^HTTP\/1\.1 400 /);
      assert.equal((await fetch(t.url)).status, 200);
    });
  }

  it('closes idle keep-alive connections after the keep-alive timeout', async () => {
    const socket = connect({ port: t.port, host: '127.0.0.1' });
    let closed = false;
    socket.on('close', () => { closed = true; });
    socket.on('data', () => {});
    socket.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    await sleep(100);
    assert.equal(closed, false);
    await waitFor(() => closed, 2000);
  });

  it('refuses connections beyond the maximum', async () => {
    const small = await startTestServer({ maxConnections: 2 });
    const sockets = [0, 1].map(() => connect({ port: small.port, host: '127.0.0.1' }));
    try {
      await Promise.all(sockets.map((s) => new Promise((r) => s.once('connect', r))));
      await sleep(50);
      const res = await rawRequest(small.port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 1000);
      assert.equal(res, '', 'third connection is closed without an answer');
      assert.ok(small.logs.messages('connection refused: --max-connections reached').length >= 1);
    } finally {
      for (const s of sockets) s.destroy();
      await small.close();
    }
  });
});
