// Deterministic failures: echo_fail_first=N with echo_key=K fails the first N
// attempts for K (status, fault, delay as asked) and lets the later ones succeed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Attempts } from '../../src/handlers/fail-first.ts';
import { requireTool, runTool, startTestServer, type TestServer } from '../helpers.ts';

describe('echo_fail_first', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 5000 });
  });
  after(() => t.close());

  it('four requests with echo_status=503&echo_fail_first=2 and one key give 503 503 200 200', async () => {
    const got = [];
    for (let i = 0; i < 4; i++)
      got.push((await fetch(`${t.url}/?echo_status=503&echo_fail_first=2&echo_key=four`)).status);
    assert.deepEqual(got, [503, 503, 200, 200]);
    // Another key counts apart.
    assert.equal((await fetch(`${t.url}/?echo_status=503&echo_fail_first=2&echo_key=other`)).status, 503);
  });

  it('takes the header forms, X-Echo-Fail-First and X-Echo-Key, and counts by the request target without a key', async () => {
    const headers = { 'X-Echo-Status': '500', 'X-Echo-Fail-First': '1', 'X-Echo-Key': 'hdr' };
    assert.equal((await fetch(`${t.url}/h`, { headers })).status, 500);
    assert.equal((await fetch(`${t.url}/h`, { headers })).status, 200);
    const keyless = `${t.url}/keyless?echo_status=502&echo_fail_first=1`;
    assert.equal((await fetch(keyless)).status, 502);
    assert.equal((await fetch(keyless)).status, 200);
  });

  it('lifts the fault and the delay too after the first N', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const url = `${t.url}/?echo_fault=reset&echo_delay=50ms&echo_fail_first=2&echo_key=faults`;
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await runTool('curl', ['-s', '-o', '/dev/null', url])).code);
    assert.deepEqual(codes, [56, 56, 0]);
    const lines = t.logs.messages('request').filter((l) => String(l.uri).includes('echo_key=faults'));
    assert.deepEqual(
      lines.map((l) => l.fault ?? null),
      ['reset', 'reset', null],
    );
  });

  it('refuses a bad count or key with 400 naming the control', async () => {
    for (const [q, re] of [
      ['echo_fail_first=-1', /invalid echo_fail_first/],
      ['echo_fail_first=1001', /invalid echo_fail_first/],
      ['echo_fail_first=1&echo_key=a%20b', /invalid echo_key/],
      [`echo_fail_first=1&echo_key=${'k'.repeat(129)}`, /invalid echo_key/],
    ] as const) {
      const res = await fetch(`${t.url}/?${q}`);
      assert.equal(res.status, 400, q);
      assert.match(await res.text(), re);
    }
  });
});

describe('the attempts map', () => {
  it('forgets the oldest key over its cap, and a key after its TTL', () => {
    let now = 0;
    const a = new Attempts(2, 1000, () => now);
    assert.equal(a.next('a'), 1);
    assert.equal(a.next('a'), 2);
    assert.equal(a.next('b'), 1);
    assert.equal(a.next('c'), 1, 'a third key: the oldest (a) goes');
    assert.equal(a.size, 2);
    assert.equal(a.next('a'), 1, 'a was forgotten');
    assert.equal(a.next('c'), 2);
    now = 1500;
    assert.equal(a.next('c'), 1, 'past its TTL c starts again');
    assert.ok(a.size <= 2);
  });
});
