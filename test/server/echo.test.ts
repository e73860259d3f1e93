import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { UUID_V4, rawRequest, startTestServer, type TestServer } from '../helpers.ts';

describe('echo over HTTP/1.1', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxEchoBody: 16, trustedProxies: new NetworkSet(['loopback']) });
  });
  after(() => t.close());

  it("answers any path and method with the article's six lines first", async () => {
    const res = await rawRequest(
      t.port,
      'GET /any/path?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nConnection: close\r\n\r\n',
    );
    const [head = '', body = ''] = res.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200 OK/);
    assert.match(head, /Content-Type: text\/plain; charset=utf-8/);
    const lines = body.split('\n');
    assert.match(lines[0]!, /^RemoteAddr: 127\.0\.0\.1:\d+$/);
    assert.equal(lines[1], 'Method: GET');
    assert.equal(lines[2], 'RequestURI: /any/path?x=1');
    assert.equal(lines[3], 'Proto: HTTP/1.1');
    assert.equal(lines[4], 'ContentLength: 0');
    assert.equal(lines[5], 'Headers: {"Host":["h"],"User-Agent":["curl/8.0"],"Accept":["*/*"],"Connection":["close"]}');
    assert.equal(lines[6], 'Path: "/any/path"');
    assert.equal(lines[7], 'Query: {"x":["1"]}');
  });

  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    it(`echoes ${method}`, async () => {
      const res = await fetch(`${t.url}/m`, { method, headers: { accept: 'application/json' } });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { method: string }).method, method);
    });
  }

  it('answers HEAD with headers only', async () => {
    const res = await fetch(`${t.url}/h`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.ok(Number(res.headers.get('content-length')) > 0);
    assert.equal(await res.text(), '');
  });

  it('keeps header order, letter case and repeats; prints content length in decimal', async () => {
    const body = 'x'.repeat(26);
    const res = await rawRequest(
      t.port,
      `POST / HTTP/1.1\r\nHost: h\r\nX-Mixed-CASE: 1\r\nx-dup: a\r\nAccept: application/json\r\nx-dup: b\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    const echo = JSON.parse(res.split('\r\n\r\n')[1]!) as Record<string, unknown>;
    assert.deepEqual(echo.headers, {
      Host: ['h'],
      'X-Mixed-CASE': ['1'],
      'x-dup': ['a', 'b'],
      Accept: ['application/json'],
      'Content-Length': ['26'],
      Connection: ['close'],
    });
    assert.deepEqual(
      (echo.rawHeaders as string[][]).map(([n]) => n),
      ['Host', 'X-Mixed-CASE', 'x-dup', 'Accept', 'x-dup', 'Content-Length', 'Connection'],
    );
    assert.equal(echo.contentLength, 26);
  });

  it('reports -1 for a chunked body of unknown length, with the real byte count', async () => {
    const res = await rawRequest(
      t.port,
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nAccept: application/json\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    const echo = JSON.parse(res.split('\r\n\r\n')[1]!) as {
      contentLength: number;
      body: { bytes: number; data: string };
    };
    assert.equal(echo.contentLength, -1);
    assert.equal(echo.body.bytes, 11);
    assert.equal(echo.body.data, 'hello world');
  });

  it('serves documented JSON fields', async () => {
    const res = await fetch(`${t.url}/p/a%20th?a=1&a=2&b=x`, {
      headers: { accept: 'application/json', cookie: 'sid=abc; theme=dark' },
    });
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    const e = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(e), [
      'remoteAddr',
      'method',
      'requestURI',
      'proto',
      'contentLength',
      'headers',
      'pseudoHeaders',
      'rawHeaders',
      'path',
      'query',
      'cookies',
      'body',
      'client',
      'requestId',
      'server',
      'env',
      'tls',
      'proxy',
      'trace',
    ]);
    assert.equal(e.path, '/p/a th');
    assert.equal(e.requestURI, '/p/a%20th?a=1&a=2&b=x');
    assert.deepEqual(e.query, { a: ['1', '2'], b: ['x'] });
    assert.deepEqual(e.cookies, { sid: 'abc', theme: 'dark' });
    assert.deepEqual(e.server, { hostname: 'test-host', addresses: ['192.0.2.10'] });
    assert.equal(e.env, null);
  });

  it('echoes text bodies as UTF-8, cut at the echo limit with the real count', async () => {
    const res = await fetch(`${t.url}/`, {
      method: 'POST',
      body: 'abcdefghijklmnopqrstuvwxyz',
      headers: { accept: 'application/json' },
    });
    const { body } = (await res.json()) as { body: Record<string, unknown> };
    assert.deepEqual(body, { bytes: 26, truncated: true, encoding: 'utf8', data: 'abcdefghijklmnop' });
  });

  it('echoes binary bodies as base64', async () => {
    const res = await fetch(`${t.url}/`, {
      method: 'POST',
      body: new Uint8Array([0, 1, 2, 255]),
      headers: { accept: 'application/json' },
    });
    const { body } = (await res.json()) as { body: Record<string, unknown> };
    assert.deepEqual(body, { bytes: 4, truncated: false, encoding: 'base64', data: 'AAEC/w==' });
  });

  it('shows the body in text as a JSON string, on one line', async () => {
    const text = await (await fetch(`${t.url}/`, { method: 'POST', body: 'two\nlines' })).text();
    assert.match(text, /^BodyBytes: 9$/m);
    assert.match(text, /^Body: "two\\nlines"$/m);
  });

  it('generates a request id, or echoes a sane one', async () => {
    const a = await fetch(`${t.url}/`);
    assert.match(a.headers.get('x-request-id')!, UUID_V4);
    assert.match(await a.text(), new RegExp(`^RequestID: ${a.headers.get('x-request-id')}$`, 'm'));
    const b = await fetch(`${t.url}/`, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(b.headers.get('x-request-id'), 'abc-123');
    const c = await fetch(`${t.url}/`, { headers: { 'x-request-id': 'a b <c>' } });
    assert.match(c.headers.get('x-request-id')!, UUID_V4, 'an insane id is replaced by a fresh UUID v4');
    assert.notEqual(c.headers.get('x-request-id'), a.headers.get('x-request-id'), 'a fresh one, not a repeat');
  });

  it('derives the client IP from forwarding headers of a trusted peer, keeping the chain', async () => {
    const res = await fetch(`${t.url}/`, { headers: { 'x-forwarded-for': '203.0.113.9, 127.0.0.1' } });
    const text = await res.text();
    assert.match(
      text,
      /^ClientIP: 203\.0\.113\.9 \(x-forwarded-for via trusted peer 127\.0\.0\.1; trusted header x-forwarded-for\)$/m,
    );
    assert.match(text, /^X-Forwarded-For: "203\.0\.113\.9, 127\.0\.0\.1"$/m);
  });

  it('negotiates HTML for browsers, escaped and locked down by CSP', async () => {
    const res = await fetch(`${t.url}/<script>alert(1)</script>?q=<img src=x onerror=alert(1)>`, {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'x-evil': '"><script>alert(2)</script>' },
    });
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /style-src 'sha256-[A-Za-z0-9+/=]+';/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+';/);
    assert.doesNotMatch(csp, /unsafe-|strict-dynamic|\*/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const html = await res.text();
    assert.ok(html.startsWith('<!DOCTYPE html>'));
    // One script, the console, and it is the one the CSP names by hash.
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    assert.equal(html.match(/<script/gi)?.length, 1);
    assert.ok(csp.includes(`'sha256-${createHash('sha256').update(scripts[0]![1]!).digest('base64')}'`));
    assert.doesNotMatch(html, /<img/i);
    assert.match(html, /&lt;script&gt;alert\(2\)&lt;\/script&gt;/);
    assert.doesNotMatch(html, /<[^>]*\s(src|href)=/i, 'no external assets');
  });

  it('lets a query parameter or header override the rendering', async () => {
    const a = await fetch(`${t.url}/?echo_format=json`);
    assert.equal(a.headers.get('content-type'), 'application/json; charset=utf-8');
    const b = await fetch(`${t.url}/`, { headers: { 'x-echo-format': 'html', accept: 'application/json' } });
    assert.equal(b.headers.get('content-type'), 'text/html; charset=utf-8');
    const c = await fetch(`${t.url}/?echo_format=svg`);
    assert.equal(c.status, 400);
    assert.match(await c.text(), /invalid echo_format/);
  });
});

describe('echo of addresses and identity', () => {
  it('shows IPv6 peers in brackets', async (ctx) => {
    let t: TestServer;
    try {
      t = await startTestServer({ host: '::1' });
    } catch {
      ctx.skip('no IPv6 loopback on this machine');
      return;
    }
    try {
      const text = await new Promise<string>((resolve, reject) => {
        request({ host: '::1', port: t.port, path: '/' }, (res) => {
          let s = '';
          res.on('data', (c: Buffer) => {
            s += c.toString();
          });
          res.on('end', () => resolve(s));
        })
          .on('error', reject)
          .end();
      });
      assert.match(text, /^RemoteAddr: \[::1\]:\d+$/m);
    } finally {
      await t.close();
    }
  });

  it('shows IPv4 clients of a dual-stack listener as plain IPv4', async () => {
    const t = await startTestServer({ host: '::' });
    try {
      const text = await (await fetch(`http://127.0.0.1:${t.port}/`)).text();
      assert.match(text, /^RemoteAddr: 127\.0\.0\.1:\d+$/m);
    } finally {
      await t.close();
    }
  });

  it('leaves identity out when turned off', async () => {
    const t = await startTestServer({ identity: false });
    try {
      const e = (await (await fetch(`${t.url}/?echo_format=json`)).json()) as { server: unknown };
      assert.equal(e.server, null);
      assert.doesNotMatch(await (await fetch(t.url)).text(), /Hostname:/);
    } finally {
      await t.close();
    }
  });

  it('echoes no environment by default, and only allowlisted variables when asked', async () => {
    const env = { APP_COLOR: 'blue', APP_SIZE: 'L', POD_NAME: 'p-1', SECRET_TOKEN: 'hunter2' };
    const off = await startTestServer({}, { env });
    try {
      assert.doesNotMatch(await (await fetch(`${off.url}/?echo_format=json`)).text(), /hunter2|blue/);
    } finally {
      await off.close();
    }
    const on = await startTestServer({ echoEnv: ['APP_*', 'POD_NAME'] }, { env });
    try {
      const e = (await (await fetch(`${on.url}/?echo_format=json`)).json()) as { env: unknown };
      assert.deepEqual(e.env, { APP_COLOR: 'blue', APP_SIZE: 'L', POD_NAME: 'p-1' });
    } finally {
      await on.close();
    }
  });
});
