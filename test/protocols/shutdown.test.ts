import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { responseComplete, startTestServer, waitFor } from '../helpers.ts';

describe('graceful shutdown across protocols', () => {
  it('lets an HTTP/2 stream in flight finish, then refuses new connections', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const session = h2connect(t.url);
    let goaway = false;
    session.on('goaway', () => {
      goaway = true;
    });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/?echo_delay=400ms' });
      let status = 0;
      let body = '';
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
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
  for (const grace of [1000, 0])
    it(`answers POSTs sent on idle keep-alive connections just as the drain begins (--drain-idle-grace ${grace}ms)`, async () => {
      const t = await startTestServer({ drainTimeoutMs: 5000, drainIdleGraceMs: grace });
      const n = 16;
      // n keep-alive connections, each idle after one complete exchange.
      const sockets = await Promise.all(
        Array.from(
          { length: n },
          () =>
            new Promise<Socket>((resolve, reject) => {
              const s = connect({ port: t.port, host: '127.0.0.1' });
              let got = '';
              s.on('error', reject);
              s.on('data', function first(c: Buffer) {
                got += c.toString('latin1');
                if (responseComplete(got)) {
                  s.off('data', first);
                  resolve(s);
                }
              });
              s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
            }),
        ),
      );
      const body = 'x'.repeat(1000);
      const answers = sockets.map(
        (s) =>
          new Promise<string>((resolve) => {
            let got = '';
            s.on('data', (c: Buffer) => {
              got += c.toString('latin1');
            });
            s.on('error', (err) => {
              got += `\n[${err.message}]`;
            });
            s.on('close', () => resolve(got));
          }),
      );
      // Written in the same tick as the drain begins: the requests are still unread.
      for (const s of sockets) s.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      const stopping = t.server.shutdown();
      const got = await Promise.all(answers);
      const answered = got.filter(
        (a) => a.startsWith('HTTP/1.1 200 ') && /\r\nConnection: close\r\n/i.test(a) && responseComplete(a),
      );
      assert.equal(
        answered.length,
        n,
        `every POST answered with Connection: close; got ${got.map((a) => a.slice(0, 40)).join(' | ')}`,
      );
      assert.equal(await stopping, true);
    });
});

describe('a drain answers connections already queued when the listener closes', () => {
  it('answers requests whose connections wait in the accept queue as the drain begins', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const n = 8;
    // A worker thread connects and sends while this thread's event loop is blocked
    // (Atomics.wait), so the connections sit in the kernel's accept queue, unaccepted,
    // when the drain begins; the worker then collects the answers.
    const sent = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(
      `
      const { workerData, parentPort } = require('node:worker_threads');
      const { connect } = require('node:net');
      const flag = new Int32Array(workerData.sent);
      const got = new Array(workerData.n).fill('');
      let written = 0;
      let closed = 0;
      for (let i = 0; i < workerData.n; i++) {
        const s = connect(workerData.port, '127.0.0.1');
        s.setTimeout(5000, () => s.destroy());
        s.on('connect', () => s.write('POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n\\r\\nhello', () => {
          if (++written === workerData.n) { Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }
        }));
        s.on('data', (c) => { got[i] += c.toString('latin1'); });
        s.on('error', (e) => { got[i] += '[' + e.code + ']'; });
        s.on('close', () => { if (++closed === workerData.n) parentPort.postMessage(got); });
      }
    `,
      { eval: true, workerData: { sent: sent.buffer, n, port: t.port } },
    );
    try {
      const answers = new Promise<string[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      assert.equal(Atomics.wait(sent, 0, 0, 10_000), 'ok', 'the worker sent every request');
      const stopping = t.server.shutdown(); // in the same turn: nothing was accepted yet
      const got = await answers;
      const answered = got.filter((a) => a.startsWith('HTTP/1.1 200 ') && responseComplete(a));
      assert.equal(
        answered.length,
        n,
        `every queued request answered; got ${got.map((a) => a.slice(0, 30)).join(' | ')}`,
      );
      assert.equal(await stopping, true);
    } finally {
      await worker.terminate();
      await t.close();
    }
  });
});
