// The committed screenshots must show what the server does today: the record beside
// them holds hashes of the scenario and of the page they were taken from, and both
// are recomputed here from today's code (no browser needed; pixels are not compared).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { currentRecord, readRecord, RECORD_FILE, startScreenshotServer } from '../browser/screenshot-record.ts';
import type { TestServer } from '../helpers.ts';

describe('committed screenshots', () => {
  let t: TestServer;
  before(async () => {
    t = await startScreenshotServer();
  });
  after(() => t.close());

  it('were taken from today’s scenario and page', async () => {
    const recorded = await readRecord();
    assert.ok(recorded !== null, `${RECORD_FILE} is missing: run npm run screenshots`);
    const now = await currentRecord(t);
    assert.equal(
      now.scenario,
      recorded.scenario,
      'the screenshot scenario changed since the pictures were made: run npm run screenshots and commit docs/screenshots/',
    );
    assert.equal(
      now.page,
      recorded.page,
      'the page changed since the pictures were made: run npm run screenshots and commit docs/screenshots/',
    );
  });
});
