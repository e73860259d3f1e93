// What the committed screenshots were taken from, as two hashes beside them in
// docs/screenshots/record.json: the scenario (the test that drives the browser) and
// the page (its markup, styles and script inlined, as the server serves it for the
// scenario's request). `npm run screenshots` writes the record; test/repo checks it
// against today's code without a browser, so stale pictures fail the suite.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { NetworkSet } from '../../src/util/addresses.ts';
import { startTestServer, type TestServer } from '../helpers.ts';

export const RECORD_FILE = 'docs/screenshots/record.json';
const SCENARIO_FILE = 'test/browser/screenshots.test.ts';

/** The page the screenshots show: the scenario's path, behind a trusted proxy. */
export const SCREENSHOT_PATH = '/api/orders?id=42';
export const SCREENSHOT_HEADERS = {
  'X-Forwarded-For': '203.0.113.7, 10.0.0.2',
  'X-Forwarded-Proto': 'https',
  'X-Request-Id': 'c0ffee42-9d2a-4e1b-8f3c-5a6b7c8d9e0f',
};

/** What a replica behind an ingress sees: a trusted proxy in a private network. */
export function startScreenshotServer(): Promise<TestServer> {
  return startTestServer(
    { trustedProxies: new NetworkSet(['loopback', 'private']) },
    { identity: { hostname: 'echo-7d9c5b8f4-x2k4p', addresses: ['10.42.0.17', 'fd00:42::17'] } },
  );
}

export interface ScreenshotRecord {
  scenario: string;
  page: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Both hashes, from today's code; `t` is a server from startScreenshotServer. */
export async function currentRecord(t: TestServer): Promise<ScreenshotRecord> {
  const res = await fetch(`${t.url}${SCREENSHOT_PATH}`, {
    headers: { accept: 'text/html', 'user-agent': 'screenshot-record', ...SCREENSHOT_HEADERS },
  });
  if (res.status !== 200) throw new Error(`the screenshot page answered ${res.status}`);
  // The only per-run values in the page: the server's port and the client's.
  const page = (await res.text()).replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT');
  return { scenario: sha256(await readFile(SCENARIO_FILE, 'utf8')), page: sha256(page) };
}

export async function readRecord(): Promise<ScreenshotRecord | null> {
  try {
    return JSON.parse(await readFile(RECORD_FILE, 'utf8')) as ScreenshotRecord;
  } catch {
    return null;
  }
}

export async function writeRecord(record: ScreenshotRecord, file = RECORD_FILE): Promise<void> {
  await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
}
