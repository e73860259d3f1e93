// Nothing a client chooses may weaken a browser: response headers by allowlist,
// and another site's page cannot open WebSockets or event streams to read the echo.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ALLOWED_HEADERS } from '../../src/controls/table.ts';
import { headComplete, rawRequest, startTestServer, type TestServer } from '../helpers.ts';

const REFUSED: [string, string][] = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Credentials', 'true'],
  ['Location', '/\t/evil.com'],
  ['Location', '/\\evil.com'],
  ['Location', '//evil.com'],
  ['Location', 'https://evil.com/'],
  ['Content-Disposition', 'attachment; filename=report.html'],
  ['CDN-Cache-Control', 'max-age=600'],
  ['Surrogate-Control', 'max-age=600'],
  ['Cache-Control', 'public, max-age=600'],
  ['Strict-Transport-Security', 'max-age=31536000'],
  ['Clear-Site-Data', '"*"'],
  ['Alt-Svc', 'h3=":443"'],
  ['WWW-Authenticate', 'Basic realm="x"'],
  ['Proxy-Authenticate', 'Basic'],
  ['Link', '</evil.css>; rel=stylesheet'],
  ['Expires', 'Thu, 01 Jan 2099 00:00:00 GMT'],
  ['Age', '100'],
  ['Vary', 'Cookie'],
  ['Set-Cookie', 'a=b'],
  ['Content-Security-Policy', 'default-src *'],
  ['Cross-Origin-Resource-Policy', 'cross-origin'],
  ['X-Frame-Options', 'ALLOWALL'],
  ['X-Accel-Redirect', '/internal'],
  ['Refresh', '0; url=https://evil.com'],
  ['X-Custom', 'a\u0001b'],
  ['X-Envoy-Immediate-Health-Check-Fail', 'true'],
  ['X-Envoy-Degraded', '1'],
  ['X-LiteSpeed-Location', '/etc/passwd'],
  ['X-Sendfile2', '/etc/passwd 0-'],
  ['X-Forwarded-Prefix', '/admin'],
  ['X-Content-Security-Policy', 'default-src *'],
  ['X-Middleware-Rewrite', '/admin'],
];

const ACCEPTED: [string, string][] = [
  ['X-Custom', 'yes'],
  ['Retry-After', '5'],
  ['Location', '/next?a=b'],
  ['Server', 'test'],
  ['ETag', '"v1"'],
];

describe('the header control by allowlist', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  for (const [name, value] of REFUSED) {
    it(`refuses ${name}: ${JSON.stringify(value)}`, async () => {
      const res = await fetch(`${t.url}/?echo_header=${encodeURIComponent(`${name}: ${value}`)}`);
      assert.equal(res.status, 400);
      // The header is exactly what any refusal carries: the value asked for changed nothing.
      const other = name === 'Age' ? 'X-Accel-Redirect: /internal' : 'Age: 100';
      const baseline = await fetch(`${t.url}/?echo_header=${encodeURIComponent(other)}`);
      assert.equal(baseline.status, 400);
      assert.equal(res.headers.get(name), baseline.headers.get(name), 'as on any refusal, not as asked');
    });
  }
  for (const [name, value] of ACCEPTED) {
    it(`sets ${name}: ${value}`, async () => {
      const res = await fetch(`${t.url}/?echo_header=${encodeURIComponent(`${name}: ${value}`)}`, {
        redirect: 'manual',
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get(name), value);
    });
  }
  it('documents the allowlist in docs/controls.md', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(new URL('../../docs/controls.md', import.meta.url), 'utf8');
    for (const name of ALLOWED_HEADERS) assert.ok(readme.toLowerCase().includes(`\`${name}\``), name);
  });
});

const upgrade = (origin: string | null) =>
  'GET /ws HTTP/1.1\r\nHost: echo.test:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  `${origin === null ? '' : `Origin: ${origin}\r\n`}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const events = (origin: string | null) =>
  `GET /sse HTTP/1.1\r\nHost: echo.test:8080\r\nAccept: text/event-stream\r\n${origin === null ? '' : `Origin: ${origin}\r\n`}Connection: close\r\n\r\n`;

describe('--allowed-origins for WebSockets and event streams', () => {
  let t: TestServer;
  let listed: TestServer;
  let any: TestServer;
  before(async () => {
    t = await startTestServer({ sseIntervalMs: 10, sseCount: 1 });
    listed = await startTestServer({ allowedOrigins: ['https://app.example'], sseIntervalMs: 10, sseCount: 1 });
    any = await startTestServer({ allowedOrigins: ['*'], sseIntervalMs: 10, sseCount: 1 });
  });
  after(async () => {
    await t.close();
    await listed.close();
    await any.close();
  });

  const cases: [string, () => TestServer, string | null, number][] = [
    ['no Origin (curl, ws)', () => t, null, 101],
    ["the server's own origin", () => t, 'http://echo.test:8080', 101],
    ['another site', () => t, 'https://evil.example', 403],
    ['a listed origin', () => listed, 'https://app.example', 101],
    ['an unlisted origin with a list', () => listed, 'https://evil.example', 403],
    ['any origin with *', () => any, 'https://evil.example', 101],
  ];
  for (const [name, server, origin, status] of cases) {
    it(`WebSocket from ${name}: ${status}`, async () => {
      const res = await rawRequest(server().port, upgrade(origin), { until: headComplete }); // a 101 leaves the connection open
      assert.match(res, new RegExp(`^HTTP/1\\.1 ${status} `));
    });
    it(`event stream from ${name}: ${status === 101 ? 200 : status}`, async () => {
      const res = await rawRequest(server().port, events(origin), 1000);
      assert.match(res, new RegExp(`^HTTP/1\\.1 ${status === 101 ? 200 : status} `));
      if (status === 403) assert.doesNotMatch(res, /event: echo/);
    });
  }
});
