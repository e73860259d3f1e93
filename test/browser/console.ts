// Driving the page's console as a person would: fill the form, press the buttons,
// read what the page shows.
import type { Page } from 'playwright-core';
import type { PageWatch } from './browser.ts';

export async function openPage(page: Page, url: string): Promise<Record<string, string>> {
  const res = await page.goto(url);
  if (res === null) throw new Error(`no response for ${url}`);
  await page.waitForSelector('html[data-console="ready"]', { timeout: 15_000 });
  return res.headers();
}

export interface RequestForm {
  method?: string;
  path?: string;
  status?: string;
  delay?: string;
  size?: string;
  fault?: string;
  failFirst?: string;
  key?: string;
  rate?: string;
  chunks?: string;
  chunkDelay?: string;
  format?: 'json' | 'text' | 'html' | '';
  via?: 'query' | 'header';
  responseHeaders?: string;
  requestHeaders?: string;
  body?: string;
}

export interface Shown {
  code: string;
  reason: string;
  timing: string;
  headers: Map<string, string>;
  body: string;
  tally: string;
}

/** Fills every field of the request builder (empty unless given). */
export async function fillRequest(page: Page, f: RequestForm): Promise<void> {
  await page.click('#tab-request');
  await page.selectOption('#rq-method', f.method ?? 'GET');
  await page.fill('#rq-path', f.path ?? '/console');
  await page.fill('#rq-status', f.status ?? '');
  await page.fill('#rq-delay', f.delay ?? '');
  await page.fill('#rq-size', f.size ?? '');
  await page.fill('#rq-fault', f.fault ?? '');
  await page.fill('#rq-fail_first', f.failFirst ?? '');
  await page.fill('#rq-key', f.key ?? '');
  await page.fill('#rq-rate', f.rate ?? '');
  await page.fill('#rq-chunks', f.chunks ?? '');
  await page.fill('#rq-chunk-delay', f.chunkDelay ?? '');
  await page.selectOption('#rq-format', f.format ?? 'json');
  await page.selectOption('#rq-via', f.via ?? 'query');
  await page.fill('#rq-resp-headers', f.responseHeaders ?? '');
  await page.fill('#rq-req-headers', f.requestHeaders ?? '');
  if ((f.method ?? 'GET') !== 'GET' && f.method !== 'HEAD') await page.fill('#rq-body', f.body ?? '');
}

/** Presses Send (or Send 20x) and waits until the console is done; returns what it shows. */
export async function sendRequest(
  page: Page,
  f: RequestForm,
  button: '#rq-send' | '#rq-repeat' = '#rq-send',
): Promise<Shown> {
  await fillRequest(page, f);
  const before = Number((await page.getAttribute('#console', 'data-finished')) ?? '0');
  await page.click(button);
  await page.waitForSelector(`#console[data-finished="${before + 1}"]`, { state: 'attached', timeout: 30_000 });
  return shown(page);
}

export async function shown(page: Page): Promise<Shown> {
  const names = await page.locator('#rq-headers-out th').allTextContents();
  const values = await page.locator('#rq-headers-out td').allTextContents();
  return {
    code: await page.locator('#rq-code').innerText(),
    reason: await page.locator('#rq-reason').innerText(),
    timing: await page.locator('#rq-timing').innerText(),
    headers: new Map(names.map((n, i) => [n, values[i] ?? ''])),
    body: (await page.locator('#rq-body-out').textContent()) ?? '',
    tally: (await page.locator('#rq-tally').textContent()) ?? '',
  };
}

/** Milliseconds until the response was complete, as the console reports them. */
export function completeMs(s: Shown): number {
  const m = /complete after ([\d.]+) ms/.exec(s.timing);
  if (m === null) throw new Error(`no timing in "${s.timing}"`);
  return Number(m[1]);
}

/**
 * Nothing went wrong on the page. Chromium logs an answer of 4xx or 5xx as a console
 * error ("Failed to load resource"); those are expected for the statuses listed.
 */
export function problems(watch: PageWatch, expectedStatuses: number[] = []): string[] {
  const expected = new RegExp(
    `Failed to load resource: the server responded with a status of (${expectedStatuses.join('|') || 'none'})\\b`,
  );
  return watch.problems().filter((p) => !(p.startsWith('console error: ') && expected.test(p)));
}

/** Waits until a console log (ws-log or sse-log) has at least `n` entries. */
export async function logEntries(
  page: Page,
  log: '#ws-log' | '#sse-log',
  n: number,
  timeout = 15_000,
): Promise<string[]> {
  await page
    .locator(`${log} li`)
    .nth(n - 1)
    .waitFor({ timeout });
  return page.locator(`${log} li`).allTextContents();
}
