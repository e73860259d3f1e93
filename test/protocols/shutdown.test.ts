import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { responseComplete, startTestServer, waitFor } from '../helpers.ts';

describe('graceful shutdown across protocols', () => {
  it('lets an HTTP/2 stream in flight finish, then refuses new connections', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const session = h2connect(t.url);
    let goaway = false;
    session.on('goaway', () => { goaway = true; });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/?echo_delay=400ms' });
      let status = 0;
      let body = '';
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    await waitFor(() => t.server.app.inFlight === 1);
    const stopping = t.server.shutdown();
    const { status, body } = await answer;
    assert.equal(status, 200);
    assert.match(body, /^Proto: HTTP\/2\.0$/m);
    assert.equal(await stopping, true);
    assert.ok(goaway, 'the session was told to go away');
    session.destroy();
    await assert.rejects(fetch(t.url));
  });
});

describe('a drain never resets a request already sent', () => {
  it('answers POSTs sent on idle keep-alive connections just as the drain begins', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const n = 16;
    // n keep-alive connections, each idle after one complete exchange.
    const sockets = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((resolve, reject) => {
      const s = connect({ port: t.port, host: '127.0.0.1' });
      let got = '';
      s.on('error', reject);
      s.on('data', function first(c: Buffer) {
        got += c.toString('latin1');
        if (responseComplete(got)) { s.off('data', first); resolve(s); }
      });
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    })));
    const body = 'x'.repeat(1000);
    const answers = sockets.map((s) => new Promise<string>((resolve) => {
      let got = '';
      s.on('data', (c: Buffer) => { got += c.toString('latin1'); });
      s.on('error', (err) => { got += `\n[${err.message}]`; });
      s.on('close', () => resolve(got));
    }));
    // Written in the same tick as the drain begins: the requests are still unread.
    for (const s of sockets) s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const stopping = t.server.shutdown();
    const got = await Promise.all(answers);
    const answered = got.filter((a) => a.startsWith('HTTP/1.1 200 ') && /\r\nConnection: close\r\n/i.test(a) && responseComplete(a));
    assert.equal(answered.length, n, `every POST answered with Connection: close; got ${got.map((a) => a.slice(0, 40)).join(' | ')}`);
    assert.equal(await stopping, true);
  });
});
