import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

describe('limits and timeouts', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      maxBodySize: 1024,
      maxHeaderSize: 2048,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
      keepAliveTimeoutMs: 300,
      maxConnections: 20,
    });
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

  it("accepts headers above Node's old 16 KiB default when configured", async () => {
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

  it('closes idle keep-alive connections after the keep-alive timeout, not before', async () => {
    const socket = connect({ port: t.port, host: '127.0.0.1' });
    let received = '';
    let answeredAt = 0;
    let closedAt = 0;
    // Both moments are taken in the event handlers, not by polling, so the idle time measured is the server's.
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      const head = received.indexOf('\r\n\r\n');
      const length = Number(/\r\nContent-Length: (\d+)\r\n/i.exec(received)?.[1]);
      if (answeredAt === 0 && head >= 0 && received.length - head - 4 === length) answeredAt = performance.now();
    });
    socket.on('close', () => {
      closedAt = performance.now();
    });
    socket.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    await waitFor(() => closedAt > 0, 3000, 'the idle connection closed');
    assert.match(received, /^HTTP\/1\.1 200 /);
    assert.ok(answeredAt > 0, 'the whole answer arrived before the close');
    const idleMs = closedAt - answeredAt;
    // --keep-alive-timeout is 300 ms here (a little slack below for timer granularity); node:http
    // adds its keepAliveTimeoutBuffer (1 s by default) before it closes, hence about 1.3 s.
    assert.ok(idleMs >= 280 && idleMs < 2000, `closed ${idleMs.toFixed(0)} ms after the answer`);
  });

  it('refuses connections beyond the maximum', async () => {
    const small = await startTestServer({ maxConnections: 2 });
    const sockets = [0, 1].map(() => connect({ port: small.port, host: '127.0.0.1' }));
    try {
      // An answer on each proves the server accepted and counts both (a client's
      // 'connect' only says the kernel completed the handshake).
      await Promise.all(
        sockets.map(
          (s) =>
            new Promise<void>((resolve, reject) => {
              s.once('error', reject);
              s.once('data', (c: Buffer) =>
                /^HTTP\/1\.1 200 /.test(c.toString('latin1')) ? resolve() : reject(new Error(c.toString('latin1'))),
              );
              s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
            }),
        ),
      );
      const res = await rawRequest(small.port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n', 1000);
      assert.equal(res, '', 'third connection is closed without an answer');
      const refused = small.logs.messages('connection refused: --max-connections reached');
      assert.equal(refused.length, 1, 'one line for the one refused connection');
      assert.equal(refused[0]!.limit, 2);
      assert.equal(refused[0]!.listener, 'http');
    } finally {
      for (const s of sockets) s.destroy();
      await small.close();
    }
  });
});

describe('an early answer is not lost to a reset (lingering close)', () => {
  // A client (nginx is one) that sends the whole body before it reads the answer
  // gets a reset, and never sees the answer, if the server closes with body unread.
  for (const [name, head, tls] of [
    [
      'a declared oversized body (413)',
      (n: number) => `POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${n}\r\n\r\n`,
      false,
    ],
    ['a chunked oversized body (413)', () => 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n', false],
    [
      'a declared oversized body over TLS (413)',
      (n: number) => `POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ${n}\r\n\r\n`,
      true,
    ],
  ] as const) {
    it(`reads and discards the rest of ${name}, then closes cleanly`, async () => {
      const t = await startTestServer({ maxBodySize: 64 * 1024, ...(tls ? { https: true, httpsPort: 0 } : {}) });
      try {
        const size = 12 * 1024 * 1024;
        const chunked = head(0).includes('chunked');
        const body = Buffer.alloc(size, 'x');
        const payload = chunked
          ? Buffer.concat([
              Buffer.from(head(size)),
              Buffer.from(`${size.toString(16)}\r\n`),
              body,
              Buffer.from('\r\n0\r\n\r\n'),
            ])
          : Buffer.concat([Buffer.from(head(size)), body]);
        const outcome = await new Promise<{ received: string; error: string | null; ended: boolean }>((resolve) => {
          const s = tls
            ? tlsConnect({
                port: t.server.listener.httpsAddress!.port,
                host: '127.0.0.1',
                rejectUnauthorized: false,
                ALPNProtocols: ['http/1.1'],
              })
            : connect({ port: t.port, host: '127.0.0.1' });
          let received = '';
          let error: string | null = null;
          let ended = false;
          s.on('data', (c: Buffer) => {
            received += c.toString('latin1');
          });
          s.on('end', () => {
            ended = true;
          });
          s.on('error', (err: NodeJS.ErrnoException) => {
            error = err.code ?? err.message;
          });
          s.on('close', () => resolve({ received, error, ended }));
          // Everything is written before anything is read, as a buffering proxy does.
          s.write(payload, () => s.end());
          setTimeout(() => s.destroy(), 10_000).unref();
        });
        assert.equal(outcome.error, null, `no reset while sending the body (got ${outcome.error})`);
        assert.match(outcome.received, /^HTTP\/1\.1 413 /);
        assert.ok(outcome.ended, 'the server closed with a FIN');
      } finally {
        await t.close();
      }
    });
  }

  it('lingers for a bounded time only: a client that never stops sending is cut off', async () => {
    const t = await startTestServer({ maxBodySize: 1024 });
    try {
      // Half-open allowed: the client goes on sending after the server's FIN.
      const s = connect({ port: t.port, host: '127.0.0.1', allowHalfOpen: true });
      let received = '';
      let closed = false;
      s.on('data', (c: Buffer) => {
        received += c.toString('latin1');
      });
      s.on('error', () => {});
      s.on('close', () => {
        closed = true;
      });
      s.write('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = `${(16 * 1024).toString(16)}\r\n${'x'.repeat(16 * 1024)}\r\n`;
      const pump = setInterval(() => {
        if (!closed) s.write(chunk);
      }, 10);
      try {
        await waitFor(() => closed, 8000, 'the server closed the lingering connection');
      } finally {
        clearInterval(pump);
        s.destroy();
      }
      assert.match(received, /^HTTP\/1\.1 413 /);
    } finally {
      await t.close();
    }
  });
});
