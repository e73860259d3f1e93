// The README's screenshots, taken by this test: light and dark, desktop and phone.
// Normally they go to a temporary directory and are only checked; `npm run
// screenshots` points ECHO_SCREENSHOTS_DIR at docs/screenshots and then shrinks them.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import type { TestServer } from '../helpers.ts';
import { launchChromium, watchedPage } from './browser.ts';
import { openPage, problems, sendRequest } from './console.ts';
import {
  currentRecord,
  SCREENSHOT_HEADERS,
  SCREENSHOT_PATH,
  startScreenshotServer,
  writeRecord,
} from './screenshot-record.ts';

const SHOTS = [
  {
    name: 'desktop-light',
    colorScheme: 'light',
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    isMobile: false,
  },
  {
    name: 'desktop-dark',
    colorScheme: 'dark',
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    isMobile: false,
  },
  {
    name: 'phone-light',
    colorScheme: 'light',
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
  },
  {
    name: 'phone-dark',
    colorScheme: 'dark',
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
  },
] as const;

/** Page backgrounds from page.css: proof that the colour scheme really switched. */
const BACKGROUND = { light: 'rgb(245, 246, 248)', dark: 'rgb(17, 20, 24)' };

let browser: Browser | null = null;
let skipReason = '';
let t: TestServer;
let dir: string;
let ownDir = false;

before(async () => {
  t = await startScreenshotServer();
  browser = await launchChromium(
    {
      skip: (msg) => {
        skipReason = msg;
      },
    },
    [t.port],
  );
  if (process.env.ECHO_SCREENSHOTS_DIR) {
    dir = process.env.ECHO_SCREENSHOTS_DIR;
    await mkdir(dir, { recursive: true });
  } else {
    dir = await mkdtemp(join(tmpdir(), 'echo-shots-'));
    ownDir = true;
  }
});
after(async () => {
  await browser?.close();
  await t?.close();
  if (ownDir) await rm(dir, { recursive: true, force: true });
});

describe('screenshots of the page', () => {
  for (const shot of SHOTS) {
    it(`${shot.name}: ${shot.viewport.width}px wide, ${shot.colorScheme}`, async (ctx) => {
      const b = browser;
      if (b === null) return ctx.skip(skipReason);
      const { context, page, watch } = await watchedPage(b, {
        colorScheme: shot.colorScheme,
        viewport: shot.viewport,
        deviceScaleFactor: shot.deviceScaleFactor,
        isMobile: shot.isMobile,
        // Fixed values, so the pictures change only when the page does.
        userAgent:
          'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
        extraHTTPHeaders: SCREENSHOT_HEADERS,
      });
      ctx.after(() => context.close());
      await openPage(page, `${t.url}${SCREENSHOT_PATH}`);
      assert.equal(await page.locator('#summary-client .big').innerText(), '203.0.113.7');
      assert.match(
        await page.locator('#summary-client').innerText(),
        /from X-Forwarded-For, believed because peer 127\.0\.0\.1 is a trusted proxy/,
      );
      assert.equal(
        await page.evaluate<string>('getComputedStyle(document.body).backgroundColor'),
        BACKGROUND[shot.colorScheme],
      );
      // Readable on a phone: nothing wider than the screen, so no sideways scrolling.
      assert.ok(
        await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth'),
        'no horizontal scrolling',
      );
      if (!shot.isMobile) {
        const r = await sendRequest(page, {
          path: '/api/orders',
          status: '201',
          delay: '120ms',
          responseHeaders: 'X-Order-Id: 43\nLocation: /api/orders/43',
        });
        assert.equal(r.code, '201');
      }
      await page.mouse.move(0, 0);
      const file = join(dir, `${shot.name}.png`);
      await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
      const png = await readFile(file);
      assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
      assert.equal(png.readUInt32BE(16), shot.viewport.width * shot.deviceScaleFactor, 'IHDR width');
      assert.equal(png.readUInt32BE(20), shot.viewport.height * shot.deviceScaleFactor, 'IHDR height');
      assert.deepEqual(problems(watch), []);
    });
  }
  // Only when the pictures are being made for docs/: the record says what they show.
  it('records what the screenshots were taken from', async (ctx) => {
    if (browser === null) return ctx.skip(skipReason);
    if (ownDir) return ctx.skip('screenshots went to a temporary directory: nothing to record');
    await writeRecord(await currentRecord(t), join(dir, 'record.json'));
  });
});
