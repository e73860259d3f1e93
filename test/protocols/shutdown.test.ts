import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  for (const grace of [1000, 0]) it(`answers POSTs sent on idle keep-alive connections just as the drain begins (--drain-idle-grace ${grace}ms)`, async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000, drainIdleGraceMs: grace });
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

describe('a drain answers connections already queued when the listener closes', () => {
  it('answers requests whose connections wait in the accept queue as the drain begins', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const dir = mkdtempSync(join(tmpdir(), 'echo-queued-'));
    try {
      const out = join(dir, 'answers.json');
      const n = 8;
      // A separate process connects and sends while this process's event loop is
      // blocked (spawnSync), so the connections sit in the kernel's accept queue;
      // it forks, and the child collects the answers.
      const script = `
import json, os, socket, sys, time
socks = []
for i in range(${n}):
    s = socket.create_connection(('127.0.0.1', ${t.port}))
    s.sendall(b'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\n\\r\\nhello')
    socks.append(s)
if os.fork() > 0:
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)  # so spawnSync returns as soon as the parent exits
got = []
for s in socks:
    s.settimeout(5)
    data = b''
    try:
        while True:
            c = s.recv(65536)
            if not c: break
            data += c
    except Exception as e:
        data += ('[%s]' % type(e).__name__).encode()
    got.append(data.decode('latin1'))
open(${JSON.stringify(out)}, 'w').write(json.dumps(got))
`;
      const r = spawnSync('python3', ['-c', script], { timeout: 10_000 });
      assert.equal(r.status, 0, r.stderr.toString());
      const stopping = t.server.shutdown(); // in the same turn: nothing was accepted yet
      const got = await waitFor(() => (existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) as string[] : null), 8000, 'the answers');
      const answered = got.filter((a) => a.startsWith('HTTP/1.1 200 ') && responseComplete(a));
      assert.equal(answered.length, n, `every queued request answered; got ${got.map((a) => a.slice(0, 30)).join(' | ')}`);
      assert.equal(await stopping, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
