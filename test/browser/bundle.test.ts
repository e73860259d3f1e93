// The production bundle's page in Chromium: the console script and stylesheet the
// build put inside the bundle run under the CSP, with nothing beside the bundle.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '../helpers.ts';
import { launchChromium, watchedPage } from './browser.ts';
import { logEntries, openPage, problems, sendRequest } from './console.ts';

const run = promisify(execFile);

describe('the production bundle in Chromium', () => {
  it('serves a page whose console works under the CSP', async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), 'echo-bundle-browser-'));
    ctx.after(() => rm(dir, { recursive: true, force: true }));
    const outfile = join(dir, 'echo-server.cjs');
    await run(process.execPath, ['scripts/build.ts', '--outfile', outfile]);
    // From an empty directory: the assets can only come from inside the bundle.
    const child = spawn(
      process.execPath,
      [outfile, '--port', '0', '--host', '127.0.0.1', '--sse-interval', '20ms', '--sse-count', '1'],
      { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    ctx.after(async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await waitFor(() => out.includes('echo-server started'), 15_000);
    const url = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[0]!;
    const browser = await launchChromium(ctx, [Number(new URL(url).port)]);
    if (browser === null) return;
    ctx.after(() => browser.close());

    const { page, watch } = await watchedPage(browser);
    await openPage(page, `${url}/bundled`);
    const r = await sendRequest(page, { status: '202', responseHeaders: 'X-Bundled: yes' });
    assert.equal(r.code, '202');
    assert.equal(r.headers.get('x-bundled'), 'yes');
    await page.click('#tab-ws');
    await page.click('#ws-connect');
    await page.click('#ws-send-text');
    assert.equal((await logEntries(page, '#ws-log', 4))[3], '←hello from the console');
    await page.click('#tab-sse');
    await page.click('#sse-open');
    assert.equal((await logEntries(page, '#sse-log', 3))[2], '←done #2: {"ticks":1}');
    assert.deepEqual(problems(watch), []);
  });
});
