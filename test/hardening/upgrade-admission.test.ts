// Upgrades pass the same admission as a GET before any 101, and HTTP/2 refusals
// reach the client: every row is answered as the same GET would be, with one access
// line and one count, and a 431 or 413 on HTTP/2 arrives with its status and its
// END_STREAM before the stream is reset.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rawRequest, requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const WEBSOCKET =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const H2C = 'Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n';
const KINDS = [
  ['GET', ''],
  ['WebSocket', WEBSOCKET],
  ['h2c upgrade', H2C],
] as const;
const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-Field-${i}: v\r\n`).join('');

/** Access-log lines (HTTP and WebSocket) and requests counted, for one server. */
async function records(t: TestServer): Promise<{ lines: number; counted: number }> {
  const lines = t.logs.lines.filter((l) => l.msg === 'request' || l.msg === 'websocket').length;
  const text = await (await fetch(`${t.url}/metrics`)).text();
  let counted = 0;
  for (const m of text.matchAll(/^echo_http_requests_total\{[^}]*\} (\d+)$/gm)) counted += Number(m[1]);
  return { lines, counted };
}

describe('admission on upgrades, before any 101', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxHeaderCount: 10 });
  });
  after(() => t.close());

  const rows: [string, string, number][] = [
    ['35 header fields over --max-header-count 10', `Host: h\r\n${fields(35)}`, 431],
    ['two Host headers', 'Host: h\r\nHost: g\r\n', 400],
    ['no Host', '', 400],
    ['an invalid Host', 'Host: a b\r\n', 400],
    ['Expect: foo', 'Host: h\r\nExpect: foo\r\n', 417],
  ];
  for (const [name, head, status] of rows) {
    it(`answers ${name} with ${status} as a GET, a WebSocket and an h2c upgrade, each logged and counted once`, async () => {
      for (const [kind, upgrade] of KINDS) {
        const before = await records(t);
        const res = await rawRequest(t.port, `GET /${kind.replace(/ /g, '-')} HTTP/1.1\r\n${head}${upgrade}\r\n`, 1500);
        assert.match(res, new RegExp(`^HTTP/1\\.1 ${status} `), `${kind}: ${res.split('\r\n')[0]}`);
        await waitFor(() => t.server.app.inFlight === 0);
        const now = await records(t);
        assert.equal(now.lines - before.lines, 1, `${kind}: one access-log line`);
        // The scrape that reads the count is itself counted, once.
        assert.equal(now.counted - before.counted, 2, `${kind}: one count (besides the previous scrape)`);
      }
    });
  }

  it('still upgrades a request that passes admission', async () => {
    const ws = await rawRequest(t.port, `GET /ws HTTP/1.1\r\nHost: h\r\n${WEBSOCKET}\r\n`, {
      until: (r) => r.includes('\r\n\r\n'),
    });
    assert.match(ws, /^HTTP\/1\.1 101 /);
    const h2c = await rawRequest(t.port, `GET /h2c HTTP/1.1\r\nHost: h\r\n${H2C}\r\n`, {
      until: (r) => r.includes('\r\n\r\n'),
    });
    assert.match(h2c, /^HTTP\/1\.1 101 /);
  });
});

describe('an h2c upgrade at the in-flight budget or while draining', () => {
  it('is answered over HTTP/1.1 as a GET would be, not switched', async () => {
    const t = await startTestServer({ maxInFlight: 1 });
    try {
      // One request held in flight fills the budget.
      const held = fetch(`${t.url}/?echo_delay=2s`).then((r) => r.text());
      await waitFor(() => t.server.app.inFlight === 1);
      const res = await rawRequest(t.port, `GET / HTTP/1.1\r\nHost: h\r\n${H2C}\r\n`, 1500);
      assert.match(res, /^HTTP\/1\.1 503 /);
      assert.match(res, /\r\nRetry-After: 1\r\n/i);
      await held;
    } finally {
      await t.close();
    }
  });

  it('while draining is answered over HTTP/1.1 with Connection: close, not switched', async () => {
    const t = await startTestServer({ shutdownDelayMs: 1500 });
    const stopped = t.server.shutdown();
    await waitFor(() => t.server.app.health.draining);
    const res = await rawRequest(t.port, `GET / HTTP/1.1\r\nHost: h\r\n${H2C}\r\n`, 1500);
    assert.match(res, /^HTTP\/1\.1 200 /);
    assert.match(res, /\r\nConnection: close\r\n/i);
    await stopped;
  });
});

/** A session whose server SETTINGS have arrived, so the limits it advertises are in force. */
async function h2(origin: string): Promise<ClientHttp2Session> {
  const s = h2connect(origin, { maxSendHeaderBlockLength: 4 << 20 });
  s.on('error', () => {});
  await once(s, 'remoteSettings');
  return s;
}

function h2status(session: ClientHttp2Session, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const req = session.request(headers);
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('close', () => resolve(`reset ${req.rstCode}`));
    req.on('error', () => {});
    req.resume();
    req.end();
  });
}

describe("HTTP/2 header limits are the app's, answered 431 and logged", () => {
  let t: TestServer;
  let small: TestServer;
  before(async () => {
    t = await startTestServer({ maxHeaderCount: 10 });
    small = await startTestServer({ maxHeaderSize: 1024 });
  });
  after(async () => {
    await t.close();
    await small.close();
  });
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-field-${i}`, 'v']));

  it('does not count the pseudo-headers: 10 fields pass --max-header-count 10, 11 do not', async () => {
    const s = await h2(t.url);
    assert.equal(await h2status(s, { ':path': '/', ...many(10) }), 200);
    assert.equal(await h2status(s, { ':path': '/', ...many(11) }), 431);
    s.close();
  });

  it('answers 431 itself far above the count and the size, where node:http2 reset the stream', async () => {
    const s = await h2(t.url);
    const before = t.logs.messages('request').length;
    assert.equal(await h2status(s, { ':path': '/', ...many(40) }), 431);
    s.close();
    const big = await h2(small.url);
    assert.equal(await h2status(big, { ':path': '/', 'x-big': 'a'.repeat(1500) }), 431);
    assert.equal(
      await h2status(big, {
        ':path': '/',
        ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-${i}`, 'a'.repeat(80)])),
      }),
      431,
    );
    big.close();
    await waitFor(() => t.logs.messages('request').length === before + 1);
  });

  it('answers Expect: foo 417 over HTTP/2 through the app, logged', async () => {
    const s = await h2(t.url);
    const before = t.logs.messages('request').length;
    assert.equal(await h2status(s, { ':path': '/expect', expect: 'foo' }), 417);
    s.close();
    await waitFor(() => t.logs.messages('request').filter((l) => l.uri === '/expect' && l.status === 417).length === 1);
    assert.equal(t.logs.messages('request').length, before + 1);
  });
});

describe('HTTP/2 refusals reach the client before the stream is reset', () => {
  let t: TestServer;
  let body: string;
  before(async () => {
    t = await startTestServer({ maxHeaderCount: 10, maxBodySize: 1024 });
    body = join(tmpdir(), `admission-upload-${process.pid}.bin`);
    writeFileSync(body, Buffer.alloc(200_000, 0x61));
  });
  after(() => t.close());

  const TRIES = 20;
  const headers = Array.from({ length: 12 }, (_, i) => ['-H', `x-field-${i}: v`]).flat();

  it('sends nghttp the whole 413 and 431, END_STREAM included, before RST_STREAM', async (ctx) => {
    if (!requireTool(ctx, 'nghttp')) return;
    for (const [name, extra, status] of [
      ['413', [], 413],
      ['431', headers, 431],
    ] as const) {
      for (let i = 0; i < TRIES; i++) {
        const r = await runTool('nghttp', ['-v', '-d', body, ...extra, `${t.url}/`]);
        assert.match(
          r.stdout,
          new RegExp(`:status: ${status}`),
          `${name} try ${i}: no status\n${r.stdout.slice(-800)}`,
        );
        const end = r.stdout.search(/recv (?:DATA frame <[^>]*flags=0x01|HEADERS frame <[^>]*flags=0x05)/);
        const reset = r.stdout.indexOf('recv RST_STREAM frame');
        assert.ok(end >= 0, `${name} try ${i}: the answer never ended (no END_STREAM)\n${r.stdout.slice(-800)}`);
        assert.ok(reset < 0 || reset > end, `${name} try ${i}: reset before the answer ended`);
      }
    }
  });

  it('gives curl the 413 and the 431 on h2c every time', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    for (const [name, extra, status] of [
      ['413', [], '413'],
      ['431', headers, '431'],
    ] as const) {
      const seen: string[] = [];
      for (let i = 0; i < TRIES; i++) {
        const r = await runTool('curl', [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--http2-prior-knowledge',
          '--data-binary',
          `@${body}`,
          ...extra,
          `${t.url}/`,
        ]);
        seen.push(r.stdout);
      }
      assert.deepEqual(
        seen.filter((s) => s !== status),
        [],
        `${name}: every try answered ${status}`,
      );
    }
    await waitFor(() => t.server.app.inFlight === 0);
  });
});
