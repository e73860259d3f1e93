// Reflected payloads in a real browser: whatever arrives in a header, the query, a
// cookie or the path (and whatever the console receives back) must show as text and
// run nothing. Checked with hooks in the page, not by reading the HTML: each payload
// calls window.__pwned() if it ever runs, a dialog is recorded, and the CSP's
// violation event reports anything the policy had to block.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers.ts';
import { launchChromium, watchedPage, type PageWatch } from './browser.ts';
import { logEntries, openPage, problems, sendRequest } from './console.ts';

const PAYLOADS = {
  img: "<img src=x onerror=__pwned('img')>",
  svg: "\"><svg onload=__pwned('svg')>",
  script: "</script><script>__pwned('script')</script>",
  attr: "' autofocus onfocus=__pwned('attr') x='",
  alert: "<img src=x onerror=alert('alert')>",
};
// Cookie values cannot hold spaces, quotes or commas; the parser needs none of them.
const COOKIE_PAYLOAD = '<img/src=x/onerror=__pwned(1)>';
const PATH_PAYLOAD = "<svg onload=__pwned('path')>";

let browser: Browser | null = null;
let skipReason = '';
let t: TestServer;

before(async () => {
  t = await startTestServer({ sseIntervalMs: 20, sseCount: 1 });
  browser = await launchChromium(
    {
      skip: (msg) => {
        skipReason = msg;
      },
    },
    [t.port],
  );
});
after(async () => {
  await browser?.close();
  await t?.close();
});

/** Lets late handlers fire (an image error, a focus) before anything is asserted. */
async function settle(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(200);
}

/** The detectors themselves work: markup put into the page by force is caught. */
async function detectorsWork(page: Page, watch: PageWatch, cspOn: boolean): Promise<void> {
  watch.clear();
  await page.evaluate(
    `document.body.insertAdjacentHTML('beforeend', ${JSON.stringify(PAYLOADS.img + PAYLOADS.alert)})`,
  );
  await settle(page);
  if (cspOn) {
    assert.ok(
      watch.cspViolations.some((v) => v.startsWith('script-src')),
      `the CSP blocks injected markup and reports it: ${watch.problems().join('; ')}`,
    );
    assert.deepEqual(watch.pwned, []);
  } else {
    assert.deepEqual(watch.pwned, ['img'], 'without the CSP, injected markup runs and the hook sees it');
    assert.deepEqual(watch.dialogs, ['alert: alert']);
  }
}

for (const cspOn of [true, false]) {
  describe(
    cspOn
      ? 'reflected payloads under the CSP'
      : 'reflected payloads with the CSP switched off in the browser (escaping alone)',
    () => {
      it('a payload in a header, the query, a cookie or the path shows as text and runs nothing', async (ctx: TestContext) => {
        const b = browser;
        if (b === null) return ctx.skip(skipReason);
        const { context, page, watch } = await watchedPage(b, {
          bypassCSP: !cspOn,
          extraHTTPHeaders: {
            'X-Evil-Img': PAYLOADS.img,
            'X-Evil-Svg': PAYLOADS.svg,
            'X-Evil-Script': PAYLOADS.script,
            'X-Evil-Attr': PAYLOADS.attr,
            'X-Evil-Alert': PAYLOADS.alert,
          },
        });
        ctx.after(() => context.close());
        await context.addCookies([{ name: 'evil', value: COOKIE_PAYLOAD, url: t.url }]);
        const query = new URLSearchParams({ q: PAYLOADS.svg, r: PAYLOADS.script }).toString();
        await openPage(page, `${t.url}/p/${PATH_PAYLOAD}?${query}`);
        await settle(page);
        assert.deepEqual(problems(watch), []);
        assert.equal(
          await page.locator('img, svg, iframe, script').count(),
          1,
          "the only element of those kinds is the page's own script",
        );
        const text = await page.locator('body').innerText();
        for (const p of [...Object.values(PAYLOADS), COOKIE_PAYLOAD, PATH_PAYLOAD])
          assert.ok(text.includes(p), `shown as text: ${p}`);
        assert.equal(await page.title(), `echo-server: GET /p/${PATH_PAYLOAD}`);
        await detectorsWork(page, watch, cspOn);
      });

      it('what the console receives back (fetch, WebSocket, SSE) shows as text and runs nothing', async (ctx: TestContext) => {
        const b = browser;
        if (b === null) return ctx.skip(skipReason);
        const { context, page, watch } = await watchedPage(b, { bypassCSP: !cspOn });
        ctx.after(() => context.close());
        await openPage(page, `${t.url}/console`);
        const html = await sendRequest(page, {
          format: 'html',
          path: `/f/${PATH_PAYLOAD}`,
          requestHeaders: `X-Evil: ${PAYLOADS.img}`,
          responseHeaders: `X-Back: ${PAYLOADS.svg}`,
        });
        assert.equal(html.headers.get('x-back'), PAYLOADS.svg);
        assert.match(html.body, /^<!DOCTYPE html>/);
        const json = await sendRequest(page, {
          method: 'POST',
          body: PAYLOADS.script + PAYLOADS.alert,
          requestHeaders: `X-Evil: ${PAYLOADS.attr}`,
        });
        assert.ok(json.body.includes(JSON.stringify(PAYLOADS.script + PAYLOADS.alert).slice(1, -1)));

        await page.click('#tab-ws');
        await page.fill('#ws-path', `/w/${PATH_PAYLOAD}`);
        await page.click('#ws-connect');
        await logEntries(page, '#ws-log', 2);
        await page.fill('#ws-message', PAYLOADS.img);
        await page.click('#ws-send-text');
        assert.equal((await logEntries(page, '#ws-log', 4))[3], `←${PAYLOADS.img}`);

        await page.click('#tab-sse');
        await page.fill('#sse-path', `/s/${PATH_PAYLOAD}?x=${encodeURIComponent(PAYLOADS.alert)}`);
        await page.click('#sse-open');
        assert.ok((await logEntries(page, '#sse-log', 3))[0]!.includes(PATH_PAYLOAD));

        await settle(page);
        assert.equal(await page.locator('img, svg, iframe, script').count(), 1);
        assert.deepEqual(problems(watch), []);
        await detectorsWork(page, watch, cspOn);
      });
    },
  );
}
