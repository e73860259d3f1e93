// Findings of an outsider's attack on the production bundle, each kept fixed:
// a full budget cannot fail liveness, HTTP/2 bodies obey --request-timeout, idle
// HTTP/2 sessions and silent h2c upgrades do not hold connections, the in-flight
// gauge stays true, long methods cannot inflate the log, h2c stays cleartext.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:https';
import { connect as h2connect } from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fdLimitWarning } from '../../src/config/fd-limit.ts';
import { rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

describe('what an outsider found', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      maxInFlight: 3,
      maxDelayMs: 5000,
      requestTimeoutMs: 800,
      headersTimeoutMs: 600,
      keepAliveTimeoutMs: 300,
      https: true,
      httpsPort: 0,
    });
  });
  after(() => t.close());

  it('a full in-flight budget refuses echoes but never the liveness, readiness and metrics endpoints', async () => {
    const held = Array.from({ length: 3 }, () => fetch(`${t.url}/?echo_delay=1500ms`).then((r) => r.status));
    await waitFor(() => t.server.app.inFlight >= 3);
    assert.equal((await fetch(`${t.url}/`)).status, 503);
    for (const path of ['/livez', '/readyz', '/metrics', '/version'])
      assert.equal((await fetch(`${t.url}${path}`)).status, 200, path);
    assert.deepEqual(await Promise.all(held), [200, 200, 200]);
  });

  it('answers 408 to an HTTP/2 body that trickles past --request-timeout', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    const started = performance.now();
    const status = await new Promise<number | string>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/slow' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('close', () => resolve(`rst ${req.rstCode}`));
      req.on('error', () => {});
      req.resume();
      const trickle = setInterval(() => {
        if (!req.destroyed) req.write('x');
        else clearInterval(trickle);
      }, 100);
      req.once('close', () => clearInterval(trickle));
    });
    session.destroy();
    assert.equal(status, 408);
    assert.ok(performance.now() - started < 3000);
  });

  it('closes an idle HTTP/2 session after --keep-alive-timeout, as HTTP/1.1 does', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': '/once' });
      req.on('error', reject);
      req.resume();
      req.on('end', () => resolve());
      req.end();
    });
    const started = performance.now();
    await new Promise<void>((resolve) => session.once('close', () => resolve()));
    assert.ok(performance.now() - started < 2000, 'closed soon after its last stream, not after --idle-timeout');
  });

  it('keeps an HTTP/2 session open while a stream runs past --keep-alive-timeout, then closes it once idle', async () => {
    const own = await startTestServer({ keepAliveTimeoutMs: 300 });
    const session = h2connect(own.url);
    session.on('error', () => {});
    const status = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': path });
        req.on('error', reject);
        let code = 0;
        req.on('response', (h) => {
          code = Number(h[':status']);
        });
        req.resume();
        req.on('end', () => resolve(code));
        req.end();
      });
    let closedAt = 0;
    let goawayAt = 0;
    session.once('close', () => {
      closedAt = performance.now();
    });
    session.once('goaway', () => {
      goawayAt = performance.now();
    });
    try {
      assert.equal(await status('/first'), 200);
      // Idle for less than the timeout, then a stream that outlives it: the session
      // must not be closed under it, and must still close once it is idle again.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await status('/slow?echo_delay=700ms'), 200);
      const lastEnded = performance.now();
      assert.equal(goawayAt, 0, 'no GOAWAY while a stream was open');
      await waitFor(() => closedAt > 0, 3000, 'the session closed once idle');
      assert.ok(closedAt - lastEnded < 2000, `closed ${(closedAt - lastEnded).toFixed(0)} ms after its last stream`);
    } finally {
      session.destroy();
      await own.close();
    }
  });

  it('closes an h2c upgrade whose client never sends the HTTP/2 preface at the front deadline', async () => {
    const s = connect({ port: t.port, host: '127.0.0.1' });
    await once(s, 'connect');
    s.on('error', () => {});
    s.on('data', () => {});
    const started = performance.now();
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write(
      'GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    const guard = setTimeout(() => s.destroy(), 8000);
    await closed;
    clearTimeout(guard);
    assert.ok(performance.now() - started < 2500, `closed after ${(performance.now() - started).toFixed(0)} ms`);
  });

  it('answers an h2c upgrade with an absolute-form target over HTTP/1.1, and never upgrades to h2c inside TLS', async () => {
    const abs = await rawRequest(
      t.port,
      'GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    assert.match(abs, /^HTTP\/1\.1 200 /);
    const overTls = await new Promise<number>((resolve, reject) => {
      get(
        {
          host: '127.0.0.1',
          port: t.server.listener.httpsAddress!.port,
          path: '/tls',
          rejectUnauthorized: false,
          headers: {
            connection: 'Upgrade, HTTP2-Settings',
            upgrade: 'h2c',
            'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA',
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      ).on('error', reject);
    });
    assert.equal(overTls, 200);
  });

  it('keeps the in-flight gauge true across parser errors and CONNECT', async () => {
    for (let i = 0; i < 10; i++) {
      await rawRequest(t.port, 'HELLO\r\n\r\n');
      await rawRequest(t.port, 'CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n');
      // A body that stops short, then the client leaves while the request is in flight.
      const partial = connect({ port: t.port, host: '127.0.0.1' });
      partial.on('error', () => {});
      partial.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc');
      await waitFor(() => t.server.app.inFlight === 1, 2000, 'the short-bodied request in flight');
      partial.destroy();
      await waitFor(() => t.server.app.inFlight === 0, 2000, 'the abandoned request no longer in flight');
    }
    await waitFor(() => t.server.app.inFlight === 0, 3000);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /^echo_http_requests_in_flight 1$/m, 'only the scrape itself');
  });

  it('caps a long HTTP/2 method in the access log', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    const method = 'M'.repeat(15_000);
    await new Promise<void>((resolve) => {
      const req = session.request({ ':method': method, ':path': '/long-method' });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.resume();
      req.end();
    });
    session.close();
    await waitFor(() => t.logs.raw.some((l) => l.includes('"uri":"/long-method"')));
    const line = t.logs.raw.find((l) => l.includes('"uri":"/long-method"'))!;
    assert.ok(line.length < 600, `${line.length} bytes`);
    assert.match(line, /"truncated":true/);
  });

  it('escapes C1 characters and U+2028 inside the JSON lines of the text echo', async () => {
    const raw = await rawRequest(
      t.port,
      Buffer.concat([
        Buffer.from('GET /c1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-C1: a'),
        Buffer.from('\u0085\u2028', 'utf8'),
        Buffer.from('b\r\n\r\n'),
      ]),
    );
    const text = Buffer.from(raw, 'latin1').toString('utf8');
    assert.match(text, /^Headers: .*"X-C1":\["a\\u0085\\u2028b"\]/m);
    assert.doesNotMatch(text, /[\u0085\u2028]/);
  });
});

describe('the open-files limit', () => {
  it('is compared with --max-connections', () => {
    assert.equal(fdLimitWarning(10_000, 1_048_576), null);
    assert.match(fdLimitWarning(10_000, 1024)!, /open-files limit \(1024\) is below --max-connections \(10000\)/);
  });

  it('is reported at start-up when it is the real connection limit', async () => {
    const child = spawn(
      'sh',
      ['-c', `ulimit -n 512 && exec "${process.execPath}" "${MAIN}" --port 0 --host 127.0.0.1`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    try {
      await waitFor(() => out.includes('open-files limit (512)'), 10_000);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
