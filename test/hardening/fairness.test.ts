// Fairness: one client cannot take every slot of the in-flight budget, readiness
// can say the budget is full, and a connection that switches to HTTP/2 by Upgrade
// after earlier requests still has to start its first stream in time.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** An h2c session from a given loopback address: another client, as far as the server can tell. */
function h2From(url: string, localAddress: string): ClientHttp2Session {
  const { hostname, port } = new URL(url);
  const session = h2connect(url, {
    createConnection: () => connect({ host: hostname, port: Number(port), localAddress }),
  });
  session.on('error', () => {});
  return session;
}

/** One stream's outcome: its status, or `rst N` when the server reset it. */
function stream(session: ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = session.request({ ':path': path });
    req.on('response', (h) => resolve(String(h[':status'])));
    req.on('close', () => resolve(`rst ${req.rstCode}`));
    req.on('error', () => {});
    req.resume();
    req.end();
  });
}

/** An HTTP/1.1 GET from a given loopback address, with optional headers. */
function getFrom(
  port: number,
  path: string,
  localAddress: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

const metric = async (url: string, name: string) =>
  Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1]);

describe('the per-client share of the in-flight budget', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 5000, logOpsRequests: false });
  });
  after(() => t.close());

  it('keeps one client to its share (auto: a tenth of --max-in-flight), so another client is still answered', async () => {
    // The default budget, 1000: ten h2c connections of 100 delayed streams from one client.
    const hog = Array.from({ length: 10 }, () => h2From(t.url, '127.0.0.1'));
    const held = hog.flatMap((s, i) =>
      Array.from({ length: 100 }, (_, j) => stream(s, `/hog-${i}-${j}?echo_delay=3s`)),
    );
    await waitFor(() => t.server.app.inFlight >= 100, 5000, 'the first client holding its share');
    // Another client meanwhile: a plain GET, delayed streams, and a WebSocket handshake.
    const other = h2From(t.url, '127.0.0.2');
    const otherStreams = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stream(other, `/other-${i}?echo_delay=200ms`)),
    );
    assert.deepEqual([...new Set(otherStreams)], ['200'], 'every stream of the other client answered');
    assert.equal((await getFrom(t.port, '/other', '127.0.0.2')).status, 200);
    // The first client, over its share on HTTP/1.1 too: 503 with Retry-After, naming the setting.
    const refused = await getFrom(t.port, '/hog-more?echo_delay=1s', '127.0.0.1');
    assert.equal(refused.status, 503);
    assert.equal(refused.retryAfter, '1');
    assert.match(refused.body, /--max-in-flight-per-client \(100\)/);
    // ... and a WebSocket upgrade is refused before any 101.
    const ws = connect({ port: t.port, host: '127.0.0.1' });
    ws.write(
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const [answer] = (await once(ws, 'data')) as [Buffer];
    assert.match(answer.toString('latin1'), /^HTTP\/1\.1 503 /);
    ws.destroy();

    const outcomes = await Promise.all(held);
    for (const s of [...hog, other]) s.close();
    assert.equal(outcomes.filter((o) => o === '200').length, 100, 'the first client got its share');
    assert.equal(outcomes.filter((o) => o === 'rst 7').length, 900, 'the rest REFUSED_STREAM');
    assert.equal(
      await metric(t.url, 'echo_requests_refused_per_client_total'),
      902,
      'each refusal counted once: 900 streams, a GET, a WebSocket',
    );
    assert.equal(await metric(t.url, 'echo_requests_refused_total'), 0, 'the whole budget was never full');
    const warned = t.logs.messages('request refused: the client holds its share of the in-flight budget').length;
    assert.ok(warned >= 1 && warned <= 40, `${warned} warnings for 902 refusals: rate-limited`);
  });

  it('keys a client by the address a trusted proxy forwards, not by the proxy, and IPv6 by its /64', async () => {
    const proxied = await startTestServer({
      maxInFlight: 20,
      maxDelayMs: 5000,
      trustedProxies: new NetworkSet(['loopback']),
    });
    try {
      // auto share of 20: 10. Ten delayed requests for one forwarded client hold it.
      const first = { 'x-forwarded-for': '198.51.100.1' };
      const held = Array.from({ length: 10 }, (_, i) =>
        getFrom(proxied.port, `/a-${i}?echo_delay=1500ms`, '127.0.0.1', first),
      );
      await waitFor(() => proxied.server.app.inFlight >= 10, 5000, 'ten held');
      assert.equal((await getFrom(proxied.port, '/a-more', '127.0.0.1', first)).status, 503);
      assert.equal(
        (await getFrom(proxied.port, '/b', '127.0.0.1', { 'x-forwarded-for': '198.51.100.2' })).status,
        200,
        'another client through the same proxy',
      );
      assert.deepEqual([...new Set((await Promise.all(held)).map((r) => r.status))], [200]);
      // IPv6 by the /64: another address of the same network is the same client, another network is not.
      const v6 = Array.from({ length: 10 }, (_, i) =>
        getFrom(proxied.port, `/v6-${i}?echo_delay=1500ms`, '127.0.0.1', { 'x-forwarded-for': '2001:db8::1' }),
      );
      await waitFor(() => proxied.server.app.inFlight >= 10, 5000, 'ten held');
      assert.equal(
        (await getFrom(proxied.port, '/v6-same', '127.0.0.1', { 'x-forwarded-for': '2001:db8::2' })).status,
        503,
      );
      assert.equal(
        (await getFrom(proxied.port, '/v6-other', '127.0.0.1', { 'x-forwarded-for': '2001:db8:0:1::1' })).status,
        200,
      );
      assert.deepEqual([...new Set((await Promise.all(v6)).map((r) => r.status))], [200]);
    } finally {
      await proxied.close();
    }
  });
});

describe('the per-client share behind a PROXY protocol balancer', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ proxyProtocol: ['http'], maxInFlight: 20, maxDelayMs: 5000 });
  });
  after(() => t.close());

  const via = (source: string, path: string) =>
    rawRequest(
      t.port,
      `PROXY TCP4 ${source} 192.0.2.2 1000 80\r\nGET ${path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`,
      5000,
    );

  it('keys a client by the PROXY header source, not by the balancer', async () => {
    const held = Array.from({ length: 10 }, (_, i) => via('198.51.100.1', `/a-${i}?echo_delay=1500ms`));
    await waitFor(() => t.server.app.inFlight >= 10, 5000, 'ten held');
    assert.match(await via('198.51.100.1', '/a-more'), /^HTTP\/1\.1 503 /);
    assert.match(await via('198.51.100.2', '/b'), /^HTTP\/1\.1 200 /);
    for (const r of await Promise.all(held)) assert.match(r, /^HTTP\/1\.1 200 /);
  });
});

describe('readiness with --ready-when-saturated false', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxInFlight: 3, maxDelayMs: 5000, readyWhenSaturated: false });
  });
  after(() => t.close());

  it('answers 503 while the in-flight budget is full, and 200 again once it is not', async () => {
    assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
    const held = Array.from({ length: 3 }, (_, i) =>
      fetch(`${t.url}/held-${i}?echo_delay=1500ms`).then((r) => r.status),
    );
    await waitFor(() => t.server.app.inFlight >= 3, 3000, 'a full budget');
    const saturated = await fetch(`${t.url}/readyz`);
    assert.equal(saturated.status, 503);
    assert.match(await saturated.text(), /saturated/);
    assert.equal((await fetch(`${t.url}/livez`)).status, 200, 'liveness is unaffected');
    assert.deepEqual(await Promise.all(held), [200, 200, 200]);
    assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
  });
});

describe('an h2c upgrade after earlier requests on the connection', () => {
  let t: TestServer;
  const HEADERS_TIMEOUT = 800;
  before(async () => {
    t = await startTestServer({ headersTimeoutMs: HEADERS_TIMEOUT, requestTimeoutMs: 5000, keepAliveTimeoutMs: 5000 });
  });
  after(() => t.close());

  it('is closed when no HTTP/2 stream follows within --headers-timeout of the switch', async () => {
    const socket: Socket = connect({ port: t.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
    });
    await once(socket, 'connect');
    socket.write('GET /first HTTP/1.1\r\nHost: h\r\n\r\n');
    await waitFor(() => /\r\n\r\n[\s\S]*ClientIP/.test(received), 2000, 'the first answer');
    const closed = once(socket, 'close');
    const guard = setTimeout(() => socket.destroy(), 10_000); // the test fails on the time, never hangs
    socket.write(
      'GET /second HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
    );
    await waitFor(() => received.includes('101 Switching Protocols'), 2000, 'the 101');
    const start = performance.now();
    await closed;
    clearTimeout(guard);
    const ms = performance.now() - start;
    assert.ok(ms < HEADERS_TIMEOUT + 1000, `closed after ${ms.toFixed(0)} ms`);
  });
});

describe('an answer that makes no progress', () => {
  let t: TestServer;
  const IDLE = 1500;
  before(async () => {
    t = await startTestServer({
      idleTimeoutMs: IDLE,
      maxDelayMs: 1000,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 10_000,
      sseIntervalMs: 50,
      sseCount: 10_000,
    });
  });
  after(() => t.close());

  it('is cancelled on HTTP/2 when the peer grants no window and only sends PINGs', async () => {
    const session = h2connect(t.url, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    await once(session, 'remoteSettings');
    const pinger = setInterval(() => {
      if (!session.destroyed) session.ping(() => {});
    }, 200);
    const start = performance.now();
    const ended = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ ms: number; rst: number }>((resolve) => {
        const req = session.request({ ':path': path, ...headers });
        req.on('error', () => {});
        req.on('close', () => resolve({ ms: performance.now() - start, rst: req.rstCode }));
        req.end();
      });
    const guard = setTimeout(() => session.destroy(), 15_000); // the test fails on the time, never hangs
    const [generated, events] = await Promise.all([
      ended('/?echo_size=100000'),
      ended('/events', { accept: 'text/event-stream' }),
    ]);
    clearTimeout(guard);
    clearInterval(pinger);
    session.destroy();
    for (const r of [generated, events]) {
      assert.equal(r.rst, 8, 'CANCEL');
      assert.ok(r.ms < IDLE + 2000, `ended after ${r.ms.toFixed(0)} ms`);
    }
    await waitFor(() => t.server.app.inFlight === 0, 2000, 'nothing left in flight');
    assert.ok(
      t.logs.messages('HTTP/2 stream cancelled: no progress sending its answer within --idle-timeout').length >= 1,
    );
  });

  it('closes an HTTP/1.1 connection whose reader stops reading while it keeps sending', async () => {
    const socket = connect({ port: t.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write('GET /?echo_size=100MiB HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\nX-Trickle: ');
    socket.pause(); // never reads the answer
    const start = performance.now();
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('a');
    }, 200);
    const guard = setTimeout(() => socket.destroy(), 15_000);
    await new Promise((resolve) => socket.once('close', resolve)); // a reset, not an error here
    clearTimeout(guard);
    clearInterval(trickle);
    const ms = performance.now() - start;
    assert.ok(ms < IDLE + 3000, `closed after ${ms.toFixed(0)} ms`);
    assert.ok(t.logs.messages('connection closed: no progress sending its answer within --idle-timeout').length >= 1);
  });

  it('leaves a slow reader that keeps reading alone', async () => {
    // 4 MiB read at about 1 MiB a second: longer than --idle-timeout, always moving.
    const socket = connect({ port: t.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write('GET /?echo_size=4MiB HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    let received = 0;
    socket.pause();
    const reader = setInterval(() => {
      let chunk: Buffer | null;
      let n = 0;
      while (n < 100_000 && (chunk = socket.read() as Buffer | null) !== null) n += chunk.length;
      received += n;
    }, 100);
    const guard = setTimeout(() => socket.destroy(), 20_000);
    await once(socket, 'end');
    clearTimeout(guard);
    clearInterval(reader);
    socket.destroy();
    assert.ok(received > 4 * 1024 * 1024, `${received} bytes read`);
  });
});
