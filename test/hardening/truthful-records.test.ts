// The echo and the records tell the truth: no field can forge another line, bytes
// are decoded as they were meant, only the chosen forwarding header is believed,
// and every outcome is logged and counted with its real status and client.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { NetworkSet } from '../../src/util/addresses.ts';
import type { Echo } from '../../src/echo/model.ts';
import { frame } from '../../src/transport/h2-frames.ts';
import { h2request, rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** A PROXY v2 header for AF_UNIX with the given (108-byte, NUL-padded) paths. */
function proxyV2Unix(source: string, destination: string): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const body = Buffer.alloc(216);
  body.write(source, 0, 'latin1');
  body.write(destination, 108, 'latin1');
  const head = Buffer.from([0x21, 0x31, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([sig, head, body]);
}

/** The body of a raw answer (read as latin1 bytes), decoded as the UTF-8 it is. */
const bodyOf = (raw: string) => Buffer.from(raw.slice(raw.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8');

describe('an echo that cannot be made to lie', () => {
  let t: TestServer;
  let proxied: TestServer;
  let realIp: TestServer;
  before(async () => {
    t = await startTestServer({ trustedProxies: new NetworkSet(['loopback']) });
    proxied = await startTestServer({ proxyProtocol: ['http'] });
    realIp = await startTestServer({ trustedProxies: new NetworkSet(['loopback']), clientIpHeader: 'x-real-ip' });
  });
  after(async () => {
    await t.close();
    await proxied.close();
    await realIp.close();
  });

  it('keeps a PROXY v2 AF_UNIX path with newlines from forging lines of the text echo', async () => {
    const forged = 'x\nMethod: FAKE\nClientIP: 6.6.6.6 (peer)';
    const raw = await rawRequest(
      proxied.port,
      Buffer.concat([
        proxyV2Unix(forged, '/run/y'),
        Buffer.from('GET /u HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'),
      ]),
    );
    const text = bodyOf(raw);
    assert.equal(text.match(/^Method: /gm)?.length, 1, text);
    assert.doesNotMatch(text, /^Method: FAKE/m);
    assert.doesNotMatch(text, /^ClientIP: 6\.6\.6\.6/m);
    assert.match(text, /^RemoteAddr: 127\.0\.0\.1:\d+$/m, 'the UNIX path is not taken as the client address');
    assert.match(text, /^ProxyProtocol: .*"transport":"UNIX"/m);
  });

  it('decodes header and cookie values as UTF-8, as path and query are', async () => {
    const raw = await rawRequest(
      t.port,
      Buffer.concat([
        Buffer.from(
          'GET /caf%C3%A9?q=%E2%9C%93 HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nConnection: close\r\nX-Word: ',
        ),
        Buffer.from('café ✓', 'utf8'),
        Buffer.from('\r\nCookie: name='),
        Buffer.from('naïve', 'utf8'),
        Buffer.from('\r\nX-Bytes: a'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('b\r\n\r\n'),
      ]),
    );
    const echo = JSON.parse(bodyOf(raw)) as Echo;
    assert.equal(echo.path, '/café');
    assert.deepEqual(echo.query.q, ['✓']);
    assert.deepEqual(echo.headers['X-Word'], ['café ✓']);
    assert.equal(echo.cookies.name, 'naïve');
    assert.deepEqual(echo.headers['X-Bytes'], ['a\\xff\\xfeb'], 'bytes that are not UTF-8 are shown escaped');
  });

  it('believes only the chosen header: Forwarded for=unknown cannot hide X-Forwarded-For', async () => {
    const res = await fetch(t.url, {
      headers: { forwarded: 'for=unknown;proto=https', 'x-forwarded-for': '203.0.113.9' },
    });
    assert.match(
      await res.text(),
      /^ClientIP: 203\.0\.113\.9 \(x-forwarded-for via trusted peer 127\.0\.0\.1; trusted header x-forwarded-for\)$/m,
    );
  });

  it("behind a proxy that sets X-Real-IP, a client's own X-Forwarded-For does not win", async () => {
    const res = await fetch(realIp.url, { headers: { 'x-real-ip': '192.0.2.9', 'x-forwarded-for': '6.6.6.6' } });
    const text = await res.text();
    assert.match(
      text,
      /^ClientIP: 192\.0\.2\.9 \(x-real-ip via trusted peer 127\.0\.0\.1; trusted header x-real-ip\)$/m,
    );
    assert.match(text, /^X-Forwarded-For: "6\.6\.6\.6"$/m, 'still shown');
  });
});

describe('one record for every outcome', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 5000, wsMaxMessage: 1024 });
  });
  after(() => t.close());

  const requests = () => t.logs.messages('request');

  it('records an HTTP/1.1 request the client abandoned as 499 with its client IP', async () => {
    const s = connect({ port: t.port, host: '127.0.0.1' });
    await once(s, 'connect');
    s.write('GET /abandoned?echo_delay=2s HTTP/1.1\r\nHost: h\r\n\r\n');
    await waitFor(() => t.server.app.inFlight === 1);
    s.destroy();
    await waitFor(() => requests().some((l) => l.uri === '/abandoned?echo_delay=2s'));
    const line = requests().find((l) => l.uri === '/abandoned?echo_delay=2s')!;
    assert.equal(line.status, 499);
    assert.equal(line.clientIp, '127.0.0.1');
    assert.equal(line.aborted, true);
  });

  it('records an HTTP/2 stream the client reset as aborted', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    const req = session.request({ ':path': '/h2-abandoned?echo_delay=2s' });
    req.on('error', () => {});
    await waitFor(() => t.server.app.inFlight === 1);
    req.close();
    await waitFor(() => requests().some((l) => l.uri === '/h2-abandoned?echo_delay=2s'));
    session.close();
    const line = requests().find((l) => l.uri === '/h2-abandoned?echo_delay=2s')!;
    assert.equal(line.aborted, true);
    assert.equal(line.status, 499);
    assert.equal(line.clientIp, '127.0.0.1');
  });

  it('records an HTTP/2 request with a body, answered in full, as answered, not aborted', async () => {
    // node:http2 may close such a stream (both sides ended) before it reports our
    // side of it finished, although the whole answer is out.
    const cases: [string, string, Record<string, string>][] = [
      ['/h2-post', 'POST', {}],
      ['/h2-expect', 'POST', { expect: '100-continue' }],
    ];
    for (const [path, method, headers] of cases) {
      const r = await h2request(t.url, path, { method, body: 'hello', headers });
      assert.equal(r.status, 200);
      assert.match(r.body, new RegExp(path));
      await waitFor(() => requests().some((l) => l.uri === path), 3000, `the line for ${path}`);
      const line = requests().find((l) => l.uri === path)!;
      assert.equal(line.status, 200, path);
      assert.equal(line.aborted, undefined, `${path} was answered in full: ${JSON.stringify(line)}`);
    }
  });

  it('records an HTTP/2 refusal that stopped reading a body sent whole, and holds it in flight no longer', async () => {
    // The request's END_STREAM is in before the 413 goes: nghttp2 closes the stream
    // once the answer's END_STREAM is out, and node:http2 would destroy it (its
    // 'close', which closes the record) only once its unread body was read to the end.
    const small = await startTestServer({ maxBodySize: 8 });
    try {
      const session = h2connect(small.url);
      session.on('error', () => {});
      const paths = ['/h2-whole-413/0', '/h2-whole-413/1', '/h2-whole-413/2'];
      for (const path of paths) {
        const s = session.request({ ':method': 'POST', ':path': path, 'content-length': '16' });
        s.on('error', () => {});
        s.end(Buffer.alloc(16)); // over --max-body-size, and whole: the stream ends with it
        const [head] = (await once(s, 'response')) as [Record<string, unknown>];
        assert.equal(head[':status'], 413);
        s.resume();
        await once(s, 'close');
      }
      const whole = () => small.logs.messages('request').filter((l) => String(l.uri).startsWith('/h2-whole-413/'));
      await waitFor(() => whole().length === paths.length, 5000, 'a line for each 413');
      assert.deepEqual(
        whole().map((l) => [l.status, l.aborted ?? false]),
        paths.map(() => [413, false]),
      );
      await waitFor(() => small.server.app.inFlight === 0, 5000, 'nothing held in flight');
      session.close();
    } finally {
      await small.close();
    }
  });

  it('records every HTTP/2 stream reset in the same write as its HEADERS, and holds none in flight', async () => {
    // Raw frames, so that each HEADERS and its RST_STREAM reach the server together.
    const literal = (name: string, value: string) =>
      Buffer.concat([
        Buffer.from([0, name.length]),
        Buffer.from(name),
        Buffer.from([value.length]),
        Buffer.from(value),
      ]);
    const STREAMS = 50;
    const frames = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))];
    for (let i = 0; i < STREAMS; i++) {
      const id = 1 + 2 * i;
      const block = Buffer.concat([
        literal(':method', 'GET'),
        literal(':scheme', 'http'),
        literal(':authority', '127.0.0.1'),
        literal(':path', `/rapid-reset/${i}`),
      ]);
      frames.push(frame(0x1, 0x5, id, block), frame(0x3, 0, id, Buffer.from([0, 0, 0, 8])));
    }
    const s = connect({ port: t.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.on('data', () => {});
    await once(s, 'connect');
    s.write(Buffer.concat(frames));
    const lines = () => requests().filter((l) => String(l.uri).startsWith('/rapid-reset/'));
    try {
      await waitFor(() => lines().length === STREAMS, 5000, 'a line for every stream');
      await waitFor(() => t.server.app.inFlight === 0, 5000, 'no reset stream left in flight');
    } finally {
      s.destroy();
    }
    assert.equal(new Set(lines().map((l) => l.uri)).size, STREAMS, 'one line each');
  });

  it('answers, logs and counts CONNECT over HTTP/2 (405), as over HTTP/1.1', async () => {
    const own = await startTestServer();
    const session = h2connect(own.url);
    session.on('error', () => {});
    try {
      const req = session.request({ ':method': 'CONNECT', ':authority': 'tunnel.example:443' }, { endStream: false });
      req.on('error', () => {});
      const [head] = (await once(req, 'response')) as [Record<string, string | number>];
      assert.equal(head[':status'], 405);
      assert.equal(head.allow, 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS');
      const lines = () => own.logs.messages('request').filter((l) => l.method === 'CONNECT');
      await waitFor(() => lines().length === 1, 3000, 'one access line');
      assert.equal(lines()[0]!.uri, 'tunnel.example:443');
      assert.equal(lines()[0]!.status, 405);
      await waitFor(() => own.server.app.inFlight === 0, 3000, 'the refused tunnel leaves nothing in flight');
      const metrics = await (await fetch(`${own.url}/metrics`)).text();
      assert.match(metrics, /^echo_http_requests_total\{method="CONNECT",status="405"\} 1$/m);
    } finally {
      session.destroy();
      await own.close();
    }
  });

  it('records a WebSocket closed for a message above --ws-max-message with 1009', async () => {
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/too-big`);
    await once(ws, 'message');
    ws.send(Buffer.alloc(4096));
    const [code] = (await once(ws, 'close')) as [number];
    assert.equal(code, 1009);
    await waitFor(() => t.logs.messages('websocket').some((l) => l.uri === '/too-big'));
    assert.equal(t.logs.messages('websocket').find((l) => l.uri === '/too-big')!.closeCode, 1009);
  });

  it('answers, logs and counts CONNECT (405) and an unsupported Expect (417)', async () => {
    assert.match(
      await rawRequest(t.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'),
      /^HTTP\/1\.1 405 /,
    );
    assert.match(
      await rawRequest(t.port, 'GET /expect HTTP/1.1\r\nHost: h\r\nExpect: magic\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 417 /,
    );
    await waitFor(() => requests().some((l) => l.method === 'CONNECT') && requests().some((l) => l.uri === '/expect'));
    assert.equal(requests().find((l) => l.method === 'CONNECT')!.status, 405);
    assert.equal(requests().find((l) => l.uri === '/expect')!.status, 417);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /^echo_http_requests_total\{method="CONNECT",status="405"\} 1$/m);
  });

  it('counts malformed requests from the parser', async () => {
    const counted = async () =>
      Number(
        /^echo_http_requests_total\{method="OTHER",status="400"\} (\d+)$/m.exec(
          await (await fetch(`${t.url}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const prior = await counted();
    await rawRequest(t.port, 'HELLO\r\n\r\n');
    assert.equal(await counted(), prior + 1, 'one malformed request, counted once');
  });
});

describe('log lines a client cannot inflate or poison', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('caps logged client text and flags the cut, over HTTP/2 with a 4 KB User-Agent from the HPACK table', async () => {
    const session = h2connect(t.url);
    const ua = 'u'.repeat(4096);
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = session.request({ ':path': `/ua-${i}`, 'user-agent': ua });
        req.on('error', reject);
        req.resume();
        req.on('end', () => resolve());
        req.end();
      });
    }
    session.close();
    await waitFor(() => t.logs.messages('request').filter((l) => String(l.uri).startsWith('/ua-')).length === 3);
    for (const l of t.logs.messages('request').filter((x) => String(x.uri).startsWith('/ua-'))) {
      assert.equal((l.userAgent as string).length, 256);
      assert.equal(l.truncated, true);
      assert.ok(JSON.stringify(l).length < 700, 'a 45-byte request buys a bounded line');
    }
  });

  it('escapes C1 control characters (0x85, 0x9b) in logged client text', async () => {
    await rawRequest(
      t.port,
      Buffer.concat([
        Buffer.from('GET /c1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nUser-Agent: a'),
        Buffer.from([0x85, 0x9b]),
        Buffer.from('b\r\n\r\n'),
      ]),
    );
    await waitFor(() => t.logs.messages('request').some((l) => l.uri === '/c1'));
    const line = t.logs.raw.find((l) => l.includes('"uri":"/c1"'))!;
    assert.ok(line.includes('"userAgent":"a\\u0085\\u009bb"'), line);
    assert.doesNotMatch(line, /[\u0080-\u009f]/);
  });

  it('rate-limits warnings about malformed requests, and accounts for every one held back', async () => {
    // A server of its own: the limiter starts with a full bucket (20) and nothing held back.
    const fresh = await startTestServer();
    try {
      const MSG = 'bad request: malformed request';
      const started = performance.now();
      await Promise.all(Array.from({ length: 200 }, () => rawRequest(fresh.port, 'HELLO\r\n\r\n')));
      const burstSeconds = (performance.now() - started) / 1000;
      const logged = fresh.logs.messages(MSG).length;
      // The burst allowance, plus what refilled (5 a second) while the burst lasted.
      assert.ok(
        logged >= 20 && logged <= 20 + Math.ceil(5 * burstSeconds),
        `${logged} warning lines for 200 malformed requests in ${burstSeconds.toFixed(2)} s`,
      );
      // Once the bucket has refilled a token, the next malformed request is logged with the count held back.
      let sent = 200;
      await waitFor(
        async () => {
          await rawRequest(fresh.port, 'HELLO\r\n\r\n');
          sent++;
          return fresh.logs.messages(MSG).length > logged;
        },
        3000,
        'a warning after the bucket refilled',
        20,
      );
      const lines = fresh.logs.messages(MSG);
      const reported = lines.reduce((n, l) => n + (typeof l.suppressedBefore === 'number' ? l.suppressedBefore : 0), 0);
      assert.equal(
        typeof lines.at(-1)!.suppressedBefore,
        'number',
        'the line after the refill reports the held-back count',
      );
      assert.equal(
        reported,
        sent - lines.length,
        `every one of the ${sent} requests is either logged or counted as held back`,
      );
    } finally {
      await fresh.close();
    }
  });
});
