// The operator's default controls: applied when a request does not set them,
// checked at start (a bad one exits 2), shown in /version and the startup line.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../cli/in-process.ts';
import { startTestServer } from '../helpers.ts';

describe('--default-controls', () => {
  it('echo_status=418 gives 418 unless the request says otherwise; other controls still apply', async () => {
    const t = await startTestServer({ defaultControls: 'echo_status=418&echo_header=X-Default:yes' });
    try {
      const plain = await fetch(`${t.url}/`);
      assert.equal(plain.status, 418);
      assert.equal(plain.headers.get('x-default'), 'yes');
      assert.equal((await fetch(`${t.url}/?echo_status=200`)).status, 200, 'the query wins');
      assert.equal((await fetch(`${t.url}/`, { headers: { 'X-Echo-Status': '201' } })).status, 201, 'a header wins');
      const mixed = await fetch(`${t.url}/?echo_header=X-Own:1`);
      assert.equal(mixed.status, 418, 'a request setting another control keeps the default status');
      assert.equal(mixed.headers.get('x-own'), '1');
      assert.equal(mixed.headers.get('x-default'), null, 'its own echo_header replaces the default one');
      assert.equal((await fetch(`${t.url}/livez`)).status, 200, 'not the probes');
      const version = (await (await fetch(`${t.url}/version`)).json()) as Record<string, unknown>;
      assert.equal(version.defaultControls, 'echo_status=418&echo_header=X-Default:yes');
    } finally {
      await t.close();
    }
  });

  it('takes weighted statuses and a delay, and combines with fail-first', async () => {
    const t = await startTestServer({ defaultControls: 'echo_status=503&echo_fail_first=1&echo_delay=20ms' });
    try {
      assert.equal((await fetch(`${t.url}/x`)).status, 503);
      assert.equal((await fetch(`${t.url}/x`)).status, 200);
    } finally {
      await t.close();
    }
  });

  it('is shown in the startup line, and a bad one exits 2 with a clear message', async () => {
    const good = await runCli([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--default-controls',
      'echo_status=503:1,200:9&echo_delay=20ms',
    ]);
    assert.equal(good.code, 0, good.err);
    assert.equal(good.config?.defaultControls, 'echo_status=503:1,200:9&echo_delay=20ms');
    for (const [value, message] of [
      ['echo_status=99', /--default-controls: invalid echo_status/],
      ['echo_colour=red', /--default-controls: unknown control echo_colour/],
      ['status=503', /--default-controls: "status" is not an echo_ control/],
      ['echo_health=fail', /--default-controls: echo_health/],
    ] as const) {
      const bad = await runCli(['--port', '0', '--host', '127.0.0.1', '--default-controls', value]);
      assert.equal(bad.code, 2, value);
      assert.equal(bad.served, false);
      assert.match(bad.err, message);
    }
  });
});
