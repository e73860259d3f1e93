// HTTP/2 and the operations endpoints are held to the same header and body limits
// as the HTTP/1.1 echo; refused WebSocket handshakes are answered and accounted.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { h2request, rawRequest, requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const MiB = 1024 * 1024;

function h2(origin: string): ClientHttp2Session {
  // node's client refuses to send header blocks above 64 KiB unless told otherwise.
  const s = h2connect(origin, { maxSendHeaderBlockLength: 4 * MiB });
  s.on('error', () => {});
  return s;
}

function h2status(session: ClientHttp2Session, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const req = session.request(headers);
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('close', () => resolve(`rst ${req.rstCode}`));
    req.on('error', () => {});
    req.resume();
    req.end();
  });
}

/**
 * Uploads up to `total` bytes on an HTTP/2 stream, only as fast as flow control
 * allows, for at most `ms`; resolves with the status and how much the server took.
 */
function h2upload(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  total: number,
  ms: number,
): Promise<{ status: number; accepted: number }> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ...headers });
    let status = 0;
    let accepted = 0;
    const chunk = Buffer.alloc(64 * 1024);
    const stop = setTimeout(() => req.close(), ms);
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.on('error', () => {});
    req.resume();
    req.on('close', () => {
      clearTimeout(stop);
      resolve({ status, accepted });
    });
    const pump = () => {
      while (accepted < total && !req.destroyed) {
        accepted += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!req.destroyed) req.end();
    };
    pump();
  });
}

describe('limits on every protocol', () => {
  let t: TestServer;
  let small: TestServer;
  before(async () => {
    t = await startTestServer({ maxBodySize: MiB });
    small = await startTestServer({ maxHeaderSize: 1024 });
  });
  after(async () => {
    await t.close();
    await small.close();
  });

  it('answers 431 over HTTP/2 above --max-header-size, as HTTP/1.1 does', async () => {
    const session = h2(small.url);
    assert.equal(await h2status(session, { ':path': '/', 'x-big': 'a'.repeat(5000) }), 431);
    assert.equal(await h2status(session, { ':path': '/', 'x-ok': 'a'.repeat(100) }), 200);
    session.close();
    assert.match(
      await rawRequest(small.port, `GET / HTTP/1.1\r\nHost: h\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`),
      /^HTTP\/1\.1 431 /,
    );
  });

  it('answers 431 to a 70 KB HTTP/2 header under the default 64 KiB limit, instead of resetting the stream', async () => {
    const session = h2(t.url);
    assert.equal(await h2status(session, { ':path': '/', 'x-big': 'a'.repeat(70_000) }), 431);
    session.close();
  });

  it('stops reading an HTTP/2 upload after answering 413, declared or not', async () => {
    const session = h2(t.url);
    const declared = await h2upload(session, { ':path': '/', 'content-length': String(200 * MiB) }, 64 * MiB, 4000);
    const undeclared = await h2upload(session, { ':path': '/' }, 64 * MiB, 4000);
    session.close();
    for (const [name, r] of [
      ['declared', declared],
      ['undeclared', undeclared],
    ] as const) {
      assert.equal(r.status, 413, name);
      assert.ok(r.accepted < 8 * MiB, `${name}: the server took ${(r.accepted / MiB).toFixed(1)} MiB after its 413`);
    }
  });

  it('holds the operations endpoints to the body limit', async () => {
    assert.match(
      await rawRequest(t.port, `POST /livez HTTP/1.1\r\nHost: h\r\nContent-Length: ${50 * 1000 * 1000}\r\n\r\n`),
      /^HTTP\/1\.1 413 /,
    );
    // A small chunked body is read and discarded; the answer follows on a kept connection.
    const small = await rawRequest(
      t.port,
      'POST /readyz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /livez HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    assert.equal(small.match(/HTTP\/1\.1 200 /g)?.length, 2);
    // A chunked body of unknown size is read only up to the limit; then the connection closes.
    const s = connect({ port: t.port, host: '127.0.0.1' });
    await once(s, 'connect');
    s.on('error', () => {});
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write('POST /readyz HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = `100000\r\n${'a'.repeat(0x100000)}\r\n`;
    let sent = 0;
    const deadline = performance.now() + 4000;
    while (!s.destroyed && sent < 50 * MiB && performance.now() < deadline) {
      if (s.writableLength === 0) {
        s.write(chunk);
        sent += 0x100000;
      }
      await new Promise((r) => setTimeout(r, 2)); // pacing: write only as the socket drains
    }
    const outcome = await Promise.race([
      closed.then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('open'), 2000)),
    ]);
    s.destroy();
    assert.equal(outcome, 'closed');
    assert.ok(sent < 24 * MiB, `the server took ${(sent / MiB).toFixed(0)} MiB of a body it does not need`);
  });
});

describe('refused WebSocket handshakes', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  const handshake = (method: string, key: string | null, version = '13') =>
    `${method} /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `${key === null ? '' : `Sec-WebSocket-Key: ${key}\r\n`}Sec-WebSocket-Version: ${version}\r\nContent-Length: 0\r\n\r\n`;

  it('answers each with its status, logs and counts it, and leaves nothing in flight', async () => {
    const cases: [string, string, number][] = [
      ['no key', handshake('GET', null), 400],
      ['a malformed key', handshake('GET', 'short'), 400],
      ['POST', handshake('POST', 'dGhlIHNhbXBsZSBub25jZQ=='), 405],
      ['another version', handshake('GET', 'dGhlIHNhbXBsZSBub25jZQ==', '8'), 426],
    ];
    for (const [name, payload, status] of cases) {
      for (let i = 0; i < 25; i++) {
        const res = await rawRequest(t.port, payload);
        assert.match(res, new RegExp(`^HTTP/1\\.1 ${status} `), name);
      }
    }
    await waitFor(() => t.server.app.inFlight === 0);
    const logged = t.logs.messages('websocket');
    assert.equal(logged.length, 100);
    assert.deepEqual([...new Set(logged.map((l) => l.status))].sort(), [400, 405, 426]);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /^echo_http_requests_in_flight 1$/m, 'only the scrape itself');
    assert.match(metrics, /^echo_http_requests_total\{method="GET",status="400"\} 50$/m);
    const started = performance.now();
    assert.equal(await t.server.shutdown(), true, 'drained');
    assert.ok(performance.now() - started < 2000, 'an idle server stops without waiting for the drain timeout');
  });
});

// What node:http2 refuses itself never reaches the app: a header list over the limit
// it advertises (reset, ENHANCE_YOUR_CALM), or a field over nghttp2's 64 KiB HPACK
// limit (GOAWAY COMPRESSION_ERROR). Each still gets one warn line and one count.
describe('HTTP/2 refusals by node:http2 itself', () => {
  const SESSION_LINE = /^HTTP\/2 session ended by node:http2/;
  // --max-header-size 1 KiB: node:http2 advertises about 8.4 KB and resets above that.
  const over = { 'x-a': 'a'.repeat(5000), 'x-b': 'b'.repeat(5000) };
  let t: TestServer;
  beforeEach(async () => {
    t = await startTestServer({ maxHeaderSize: 1024 });
  });
  afterEach(async () => {
    await t.close();
  });

  const refusedByNode = async (kind: string) => {
    const m = new RegExp(`^echo_http2_refused_by_node_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(
      await (await fetch(`${t.url}/metrics`)).text(),
    );
    return m === null ? -1 : Number(m[1]);
  };
  const lines = (msg: RegExp) => t.logs.lines.filter((l) => typeof l.msg === 'string' && msg.test(l.msg));

  // A stream node:http2 resets itself gives JavaScript no event, and a gap in the
  // client's stream ids is no evidence of one (nghttp opens its first request on
  // stream 13): such a stream is left uncounted rather than counted on a guess.
  it('resets a header list over its limit without a line or a count, and goes on serving', async () => {
    const session = h2(t.url);
    // The first request lets the client acknowledge SETTINGS: node:http2 holds a
    // stream to the advertised list size only from then on.
    assert.equal(await h2status(session, { ':path': '/' }), 200);
    assert.equal(await h2status(session, { ':path': '/', ...over }), 'rst 11');
    assert.equal(await h2status(session, { ':path': '/' }), 200);
    session.close();
    assert.equal(await refusedByNode('session'), 0);
    assert.equal(lines(/node:http2/).length, 0);
  });

  it('logs and counts a session ended for a header field over 64 KiB, and goes on serving', async () => {
    const session = h2(t.url);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    assert.equal(await h2status(session, { ':path': '/' }), 200);
    // '~' has a 13-bit Huffman code, so the field goes out as 70,000 literal bytes.
    assert.equal(await h2status(session, { ':path': '/', 'x-big': '~'.repeat(70_000) }), 'rst 9');
    assert.equal(await goaway, 9, 'GOAWAY COMPRESSION_ERROR');
    await waitFor(() => lines(SESSION_LINE).length > 0, 2000, 'the warn line');
    const [line, ...more] = lines(SESSION_LINE);
    assert.equal(more.length, 0, 'one line');
    assert.equal(line!.level, 'warn');
    assert.equal(await refusedByNode('session'), 1);
    assert.equal(t.logs.lines.filter((l) => l.level === 'warn' || l.level === 'error').length, 1, 'nothing else');
    assert.equal((await h2request(t.url, '/')).status, 200);
  });

  it('logs and counts a session ended for a header block in more CONTINUATION frames than nghttp2 takes', async () => {
    const session = h2(t.url);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    // 200 KB of '~' (no Huffman gain) in 16 KiB frames: a HEADERS and a dozen CONTINUATIONs.
    const fields = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`x-${i}`, '~'.repeat(50_000)]));
    assert.equal(await h2status(session, { ':path': '/', ...fields }), 'rst 2');
    assert.equal(await goaway, 2, 'GOAWAY INTERNAL_ERROR');
    await waitFor(() => lines(SESSION_LINE).length > 0, 2000, 'the warn line');
    assert.equal(lines(SESSION_LINE).length, 1);
    assert.match(String(lines(SESSION_LINE)[0]!.err), /CONTINUATION/);
    assert.equal(await refusedByNode('session'), 1);
    assert.equal((await h2request(t.url, '/')).status, 200);
  });

  // nghttp, a well-behaved client, sends PRIORITY frames on the idle streams 3 to 11
  // and its first request on stream 13: none of those is a refusal.
  it('counts nothing for nghttp, whose first request is on stream 13', async (ctx) => {
    if (!requireTool(ctx, 'nghttp')) return;
    const r = await runTool('nghttp', [`${t.url}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await refusedByNode('session'), 0);
    assert.equal(lines(/node:http2/).length, 0);
  });
});
