// The HTML page in a real browser: the echo, the summary, and every console control,
// over HTTP/1.1 and over HTTPS with HTTP/2, with JavaScript on and off.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Browser } from 'playwright-core';
import type { Echo } from '../../src/echo/model.ts';
import { HTML_CSP } from '../../src/echo/render/html.ts';
import { UUID_V4, requireTool, runTool, startTestServer, type TestServer } from '../helpers.ts';
import { launchChromium, watchedPage } from './browser.ts';
import { completeMs, fillRequest, logEntries, openPage, problems, sendRequest } from './console.ts';
import { holdingProxy, type HoldingProxy } from './holding-proxy.ts';

let browser: Browser | null = null;
let skipReason = '';
let t: TestServer;
let httpsOrigin: string;
/** The test server behind a relay that holds WebSocket handshakes (a socket that stays connecting). */
let held: HoldingProxy;

before(async () => {
  t = await startTestServer({ https: true, httpsPort: 0, sseIntervalMs: 40, sseCount: 3, wsMaxMessage: 64 });
  const httpsPort = t.server.listener.httpsAddress!.port;
  httpsOrigin = `https://localhost:${httpsPort}`;
  held = await holdingProxy(t.port);
  browser = await launchChromium(
    {
      skip: (msg) => {
        skipReason = msg;
      },
    },
    [t.port, httpsPort, held.port],
    ['--ignore-certificate-errors'],
  );
});
after(async () => {
  await browser?.close();
  await held?.close();
  await t?.close();
});

function need(ctx: TestContext): Browser | null {
  if (browser === null) ctx.skip(skipReason);
  return browser;
}

describe('the HTML page in Chromium over HTTP/1.1', () => {
  it('shows the echo with the summary on top, under the CSP, with no violation and no console error', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b, {
      extraHTTPHeaders: { 'X-Request-Id': 'browser-test-1', 'X-Forwarded-For': '198.51.100.7' },
    });
    ctx.after(() => context.close());
    const headers = await openPage(page, `${t.url}/first/page?x=1`);
    assert.equal(headers['content-security-policy'], HTML_CSP);
    assert.equal(await page.locator('#summary-client .big').innerText(), '127.0.0.1');
    assert.match(
      await page.locator('#summary-client').innerText(),
      /X-Forwarded-For ignored: peer 127\.0\.0\.1 is not a trusted proxy/,
    );
    assert.equal(await page.locator('#summary-protocol .big').innerText(), 'HTTP/1.1');
    assert.match(await page.locator('#summary-protocol').innerText(), /cleartext, no TLS/);
    assert.equal(await page.locator('#summary-replica .big').innerText(), 'test-host');
    assert.equal(await page.locator('#summary-request-id .big').innerText(), 'browser-test-1');
    assert.match(await page.locator('#summary-request-id').innerText(), /kept from the request/);
    const echo = await page.locator('#echo').innerText();
    assert.match(echo, /X-Forwarded-For\s+198\.51\.100\.7/);
    assert.match(echo, /Request URI\s+\/first\/page\?x=1/);
    assert.ok(await page.locator('#console').isVisible(), 'the console is shown when JavaScript runs');
    assert.ok(await page.locator('#rq-form').isVisible());
    assert.deepEqual(problems(watch), []);
  });

  it('round-trips every response control through fetch: status, weighted status, delay, headers, size, format', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/start`);

    const teapot = await sendRequest(page, { status: '418' });
    assert.equal(teapot.code, '418');
    assert.match(teapot.timing, /over http\/1\.1/);

    const weighted = await sendRequest(page, { status: '201:1,202:1' }, '#rq-repeat');
    assert.match(weighted.tally, /^20 requests: /);
    const counts: Record<string, number> = Object.fromEntries(
      [...weighted.tally.matchAll(/(\d{3}) ×(\d+)/g)].map((m) => [m[1]!, Number(m[2])]),
    );
    assert.equal((counts['201'] ?? 0) + (counts['202'] ?? 0), 20, weighted.tally);
    assert.ok(counts['201']! > 0 && counts['202']! > 0, `both statuses come up in 20 tries: ${weighted.tally}`);

    const slow = await sendRequest(page, { delay: '300ms' });
    assert.equal(slow.code, '200');
    assert.ok(completeMs(slow) >= 295, slow.timing);

    // Distributions, rate and pieces, as headers too (X-Echo-Chunk-Delay, with a dash).
    const paced = await sendRequest(page, {
      delay: '5ms:1,6ms:1',
      size: '3000',
      chunks: '3',
      chunkDelay: '20ms',
      via: 'header',
    });
    assert.equal(paced.code, '200');
    assert.match(paced.headers.get('x-echo-chosen-delay') ?? '', /^[56]$/);
    assert.equal(paced.headers.get('x-echo-chosen-size'), '3000');
    const rated = await sendRequest(page, { size: '2000', rate: '4KiB' });
    assert.equal(rated.code, '200');

    const withHeaders = await sendRequest(page, { responseHeaders: 'X-From-Console: yes\nRetry-After: 7' });
    assert.equal(withHeaders.headers.get('x-from-console'), 'yes');
    assert.equal(withHeaders.headers.get('retry-after'), '7');
    // A header outside the allowlist comes back as the server's 400, shown like any answer.
    const refused = await sendRequest(page, { responseHeaders: 'Cache-Control: max-age=7' });
    assert.equal(refused.code, '400');

    const sized = await sendRequest(page, { size: '1KiB' });
    assert.equal(sized.headers.get('content-type'), 'application/octet-stream');
    assert.match(sized.timing, /, 1024 bytes/);
    assert.match(sized.body, /^1024 bytes of application\/octet-stream/);

    const text = await sendRequest(page, { format: 'text', path: '/as/text' });
    assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.match(text.body, /^RemoteAddr: 127\.0\.0\.1:\d+\nMethod: GET\nRequestURI: \/as\/text\?echo_format=text\n/);
    const html = await sendRequest(page, { format: 'html' });
    assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(html.body, /^<!DOCTYPE html>/, 'an HTML answer is shown as text');
    const json = await sendRequest(page, { format: 'json', path: '/as/json?k=v' });
    assert.deepEqual((JSON.parse(json.body) as Echo).query, { k: ['v'], echo_format: ['json'] });

    // The same controls as X-Echo-* request headers instead of query parameters.
    const viaHeaders = await sendRequest(page, { via: 'header', status: '203', responseHeaders: 'X-Via: header' });
    assert.equal(viaHeaders.code, '203');
    assert.equal(viaHeaders.headers.get('x-via'), 'header');
    const sent = JSON.parse(viaHeaders.body) as Echo;
    assert.deepEqual(sent.headers['x-echo-status'], ['203']);
    assert.deepEqual(sent.query, {});

    const posted = await sendRequest(page, {
      method: 'PUT',
      body: 'hello body',
      requestHeaders: 'X-Forwarded-For: 203.0.113.9',
    });
    const put = JSON.parse(posted.body) as Echo;
    assert.equal(put.method, 'PUT');
    assert.equal(put.body.data, 'hello body');
    assert.equal(put.client.xForwardedFor, '203.0.113.9');

    const bad = await sendRequest(page, { status: '99' });
    assert.equal(bad.code, '400');
    assert.match(bad.body, /invalid echo_status/);
    assert.deepEqual(problems(watch, [400, 418]), []);
  });

  it('sends the fault controls: fail-first by header counts per key, and the fault goes into the curl command', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/start`);
    const form = { status: '503', failFirst: '1', key: 'console-1', via: 'header' as const };
    assert.equal((await sendRequest(page, form)).code, '503');
    assert.equal((await sendRequest(page, form)).code, '200', 'the second attempt for the key succeeds');
    assert.match(
      (await page.locator('#rq-curl').textContent()) ?? '',
      /X-Echo-Fail-First: 1/,
      'the header form has dashes',
    );
    await fillRequest(page, { fault: 'reset' });
    assert.match((await page.locator('#rq-curl').textContent()) ?? '', /echo_fault=reset/);
  });

  it('copies a request as a curl command that reproduces it', async (ctx) => {
    const b = need(ctx);
    if (b === null || !requireTool(ctx, 'curl')) return;
    const { context, page, watch } = await watchedPage(b, { permissions: ['clipboard-read', 'clipboard-write'] });
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/start`);
    await page.click('#tab-request');
    await fillRequest(page, {
      method: 'POST',
      path: "/curl/it's",
      status: '202',
      responseHeaders: 'X-Quote: it\'s "quoted"',
      requestHeaders: 'X-Spaced: a  b',
      body: "line one\nit's line two",
    });
    await page.click('#rq-copy');
    await page.waitForSelector('#rq-copied:has-text("Copied.")');
    const copied = await page.evaluate<string>('navigator.clipboard.readText()');
    assert.equal(copied, await page.locator('#rq-curl').textContent());
    assert.match(copied, /^curl -g -i -X POST /);
    const out = await runTool('sh', ['-c', copied]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^HTTP\/1\.1 202 /);
    assert.match(out.stdout, /^X-Quote: it's "quoted"\r$/m);
    const echo = JSON.parse(out.stdout.slice(out.stdout.indexOf('\r\n\r\n') + 4)) as Echo;
    assert.equal(echo.path, "/curl/it's");
    assert.equal(echo.body.data, "line one\nit's line two");
    assert.deepEqual(echo.headers['X-Spaced'], ['a  b']);
    assert.deepEqual(problems(watch), []);
  });

  it('copies as curl a path with [1-3] as one request, and a body starting with @ as text, not a local file', async (ctx) => {
    const b = need(ctx);
    if (b === null || !requireTool(ctx, 'curl')) return;
    const { context, page, watch } = await watchedPage(b, { permissions: ['clipboard-read', 'clipboard-write'] });
    ctx.after(() => context.close());
    const dir = await mkdtemp(join(tmpdir(), 'console-curl-'));
    ctx.after(() => rm(dir, { recursive: true, force: true }));
    const secret = join(dir, 'secret.txt');
    await writeFile(secret, 'a local file that must not be uploaded');
    await openPage(page, `${t.url}/start`);
    await fillRequest(page, { method: 'POST', path: '/glob/[1-3]/{a,b}', body: `@${secret}` });
    await page.click('#rq-copy');
    await page.waitForSelector('#rq-copied:has-text("Copied.")');
    const copied = await page.evaluate<string>('navigator.clipboard.readText()');
    const out = await runTool('sh', ['-c', copied]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.match(/^HTTP\/1\.1 /gm)?.length, 1, `one request, not one per glob expansion: ${copied}`);
    const echo = JSON.parse(out.stdout.slice(out.stdout.indexOf('\r\n\r\n') + 4)) as Echo;
    assert.equal(echo.path, '/glob/[1-3]/{a,b}');
    assert.equal(echo.body.data, `@${secret}`);
    assert.deepEqual(problems(watch), []);
  });

  it('WebSocket: connects to the same host, echoes text and binary, shows close codes and reasons', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/ws/page`);
    await page.click('#tab-ws');
    await page.fill('#ws-path', '/chat?room=1');
    await page.click('#ws-connect');
    let log = await logEntries(page, '#ws-log', 2);
    assert.match(log[0]!, /open/);
    const handshake = JSON.parse(log[1]!.slice(log[1]!.indexOf(': {') + 2)) as Echo;
    assert.equal(
      log[1]!.slice(0, log[1]!.indexOf(': {')),
      `←echo of the handshake, HTTP/1.1, client 127.0.0.1, request id ${handshake.requestId}`,
    );
    assert.match(handshake.requestId, UUID_V4);
    assert.equal(handshake.requestURI, '/chat?room=1');
    await page.fill('#ws-message', 'héllo');
    // One at a time: the echo of the text may come back after the binary is sent.
    await page.click('#ws-send-text');
    await logEntries(page, '#ws-log', 4);
    await page.click('#ws-send-binary');
    log = await logEntries(page, '#ws-log', 6);
    assert.deepEqual(log.slice(2), [
      '→héllo',
      '←héllo',
      '→binary, 6 bytes: 68 c3 a9 6c 6c 6f',
      '←binary, 6 bytes: 68 c3 a9 6c 6c 6f',
    ]);
    await page.click('#ws-close');
    log = await logEntries(page, '#ws-log', 7);
    assert.equal(log[6], '•closed: code 1000, reason "closed from the console"');
    assert.match(await page.locator('#ws-state').innerText(), /Closed \(code 1000\)/);

    // The server's own close: a message above --ws-max-message (64 bytes here).
    await page.click('#ws-connect');
    await logEntries(page, '#ws-log', 9);
    await page.fill('#ws-message', 'x'.repeat(100));
    await page.click('#ws-send-text');
    log = await logEntries(page, '#ws-log', 11);
    assert.match(log[10]!, /^•closed: code 1009\b/);
    assert.deepEqual(problems(watch), []);
  });

  it('WebSocket: offers sending only once the socket is open, not while it connects', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${held.url}/slow/handshake`);
    await page.click('#tab-ws');
    await page.click('#ws-connect');
    await held.holding(); // the handshake reached the relay, which holds it: the socket is connecting
    assert.match(await page.locator('#ws-state').innerText(), /^Connecting to /);
    assert.equal(await page.locator('#ws-send-text').isDisabled(), true, 'send text while connecting');
    assert.equal(await page.locator('#ws-send-binary').isDisabled(), true, 'send binary while connecting');
    assert.equal(await page.locator('#ws-connect').isDisabled(), true);
    assert.equal(await page.locator('#ws-close').isEnabled(), true, 'a connecting socket can be given up');
    held.release();
    await page.click('#ws-send-text'); // waits until the button is enabled, on 'open'
    const log = await logEntries(page, '#ws-log', 4);
    assert.equal(log[0], '•open');
    assert.deepEqual(log.slice(2), ['→hello from the console', '←hello from the console']);
    assert.deepEqual(problems(watch), []);
  });

  it('SSE: opens the event stream and shows the echo, the ticks and the end', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/events/page`);
    await page.click('#tab-sse');
    await page.click('#sse-open');
    const log = await logEntries(page, '#sse-log', 5);
    const echoed = JSON.parse(log[0]!.slice(log[0]!.indexOf(': {') + 2)) as Echo;
    assert.equal(
      log[0]!.slice(0, log[0]!.indexOf(': {')),
      `←echo #0, HTTP/1.1, client 127.0.0.1, request id ${echoed.requestId}`,
    );
    assert.match(echoed.requestId, UUID_V4);
    assert.match(log[1]!, /^←tick #1: \{"n":1,"time":"/);
    assert.match(log[3]!, /^←tick #3: \{"n":3,/);
    assert.equal(log[4], '←done #4: {"ticks":3}');
    assert.equal(await page.locator('#sse-state').innerText(), 'Ended by the server (done) after 3 ticks.');
    assert.ok(await page.locator('#sse-open').isEnabled(), 'the stream can be opened again');
    assert.deepEqual(problems(watch), []);
  });

  it('gRPC-Web: calls Echo, shows the status, the record and the trailers; markup in the payload stays text', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    await openPage(page, `${t.url}/grpc/page`);
    await page.click('#tab-grpc');
    const call = async (payload: string, metadata: string) => {
      const before = Number((await page.getAttribute('#panel-grpc', 'data-calls')) ?? '0');
      await page.fill('#grpc-payload', payload);
      await page.fill('#grpc-metadata', metadata);
      await page.click('#grpc-call');
      await page.waitForSelector(`#panel-grpc[data-calls="${before + 1}"]`, { state: 'attached', timeout: 30_000 });
      const table = async (id: string) => {
        const names = await page.locator(`#${id} th`).allTextContents();
        const values = await page.locator(`#${id} td`).allTextContents();
        return names.map((n, i) => [n, values[i] ?? ''] as const);
      };
      return {
        code: await page.locator('#grpc-code').innerText(),
        message: await page.locator('#grpc-message').innerText(),
        record: await table('grpc-record'),
        trailers: await table('grpc-trailers'),
      };
    };
    const ok = await call('<img src=x onerror=alert(1)>', 'x-trace: one\nx-echo-trailer: X-Shard: 7');
    assert.equal(ok.code, 'OK (0)');
    const record = new Map(ok.record.filter(([n]) => n !== 'metadata'));
    assert.equal(record.get('path'), '/echoserver.v1.Echo/Echo');
    assert.equal(record.get('proto'), 'HTTP/1.1');
    assert.equal(record.get('client'), '127.0.0.1 (peer)');
    assert.equal(record.get('server'), 'test-host');
    assert.equal(record.get('payload'), '28 bytes: <img src=x onerror=alert(1)>');
    assert.ok(ok.record.some(([n, v]) => n === 'metadata' && v === 'x-trace: one'));
    assert.deepEqual(ok.trailers, [['x-shard', '7']]);
    assert.equal(await page.locator('#panel-grpc img').count(), 0);
    const failed = await call('', 'x-echo-status: 14');
    assert.equal(failed.code, 'UNAVAILABLE (14)');
    assert.equal(failed.message, 'x-echo-status asked for UNAVAILABLE');
    assert.deepEqual(problems(watch), []);
  });

  it('with JavaScript off still shows the whole echo, and no console', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b, {
      javaScriptEnabled: false,
      extraHTTPHeaders: { 'X-Request-Id': 'no-js-1' },
    });
    ctx.after(() => context.close());
    const res = await page.goto(`${t.url}/no/script?q=1`);
    assert.equal(res?.status(), 200);
    assert.equal(await page.locator('#summary-request-id .big').innerText(), 'no-js-1');
    assert.equal(await page.locator('#summary-protocol .big').innerText(), 'HTTP/1.1');
    assert.match(await page.locator('#echo').innerText(), /Request URI\s+\/no\/script\?q=1/);
    assert.equal(await page.locator('#console').isVisible(), false, 'the console needs JavaScript and stays hidden');
    assert.match(await page.locator('noscript').innerText(), /needs JavaScript; the echo above is complete without it/);
    assert.equal(await page.getAttribute('html', 'data-console'), null);
    assert.deepEqual(problems(watch), []);
  });
});

describe('the HTML page in Chromium over HTTPS with HTTP/2', () => {
  it('shows HTTP/2 and TLS in the summary; fetch and SSE run over h2, WebSocket over TLS', async (ctx) => {
    const b = need(ctx);
    if (b === null) return;
    const { context, page, watch } = await watchedPage(b);
    ctx.after(() => context.close());
    const headers = await openPage(page, `${httpsOrigin}/secure/page`);
    assert.equal(headers['content-security-policy'], HTML_CSP);
    assert.equal(await page.locator('#summary-protocol .big').innerText(), 'HTTP/2.0');
    assert.match(await page.locator('#summary-protocol').innerText(), /TLSv1\.3 · ALPN h2 · SNI localhost/);
    assert.match(await page.locator('#echo').innerText(), /:authority\s+localhost:\d+/);

    const r = await sendRequest(page, { status: '200:1,503:1', path: '/over/h2' }, '#rq-repeat');
    assert.match(r.timing, /over h2$/, JSON.stringify(r));
    assert.match(r.tally, /^20 requests: /);
    const json = await sendRequest(page, { responseHeaders: 'X-H2: yes', delay: '50ms' });
    assert.equal(json.code, '200', json.reason);
    assert.equal(json.headers.get('x-h2'), 'yes');
    assert.equal((JSON.parse(json.body) as Echo).proto, 'HTTP/2.0');

    await page.click('#tab-sse');
    await page.click('#sse-open');
    const events = await logEntries(page, '#sse-log', 5);
    assert.match(events[0]!, /^←echo #0, HTTP\/2\.0, /);
    assert.equal(events[4], '←done #4: {"ticks":3}');

    // Chromium opens a WebSocket on a connection of its own: the server does not offer
    // WebSocket over HTTP/2 (RFC 8441), so the handshake arrives as HTTP/1.1 over TLS.
    await page.click('#tab-ws');
    await page.click('#ws-connect');
    const log = await logEntries(page, '#ws-log', 2);
    const handshake = JSON.parse(log[1]!.slice(log[1]!.indexOf(': {') + 2)) as Echo;
    assert.equal(handshake.proto, 'HTTP/1.1');
    assert.equal(handshake.tls?.alpn, 'http/1.1');
    assert.equal(handshake.headers.Origin?.[0], httpsOrigin);
    await page.click('#ws-send-text');
    await logEntries(page, '#ws-log', 4);
    await page.click('#ws-send-binary');
    const echoed = await logEntries(page, '#ws-log', 6);
    assert.equal(echoed[3], '←hello from the console');
    assert.match(echoed[5]!, /^←binary, 22 bytes: 68 65 6c 6c 6f/);
    await page.click('#ws-close');
    assert.match((await logEntries(page, '#ws-log', 7))[6]!, /code 1000/);
    assert.deepEqual(problems(watch, [503]), []);
  });
});
