// A sick replica: health state `sick` fails the echo (--sick-answer) while liveness
// and readiness stay green; `ok` restores it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EchoClient, grpc } from '../grpc-client.ts';
import { requireTool, runTool, startTestServer } from '../helpers.ts';

describe('health state sick', () => {
  it('fails the echo and gRPC with the sick answer, keeps /livez and /readyz 200, and ok restores', async () => {
    const t = await startTestServer({ healthControl: true });
    const c = new EchoClient(`127.0.0.1:${t.port}`);
    try {
      assert.equal((await fetch(`${t.url}/readyz?echo_health=sick`)).status, 200);
      const res = await fetch(`${t.url}/anything`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /sick/);
      assert.equal((await fetch(`${t.url}/livez`)).status, 200);
      assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
      const call = await c.echo(undefined, {});
      assert.equal(call.error?.code, grpc.status.UNAVAILABLE);
      assert.equal(
        (await fetch(`${t.url}/?echo_health=ok`)).status,
        200,
        'the health control on the echo itself restores',
      );
      assert.equal((await fetch(`${t.url}/`)).status, 200);
      assert.equal((await c.echo(undefined, {})).error, null);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('answers with the fault --sick-answer names', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const t = await startTestServer({ healthControl: true, sickAnswer: 'reset' });
    try {
      await fetch(`${t.url}/livez?echo_health=sick`);
      assert.equal((await runTool('curl', ['-s', '-o', '/dev/null', `${t.url}/`])).code, 56);
      assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
    } finally {
      await t.close();
    }
  });

  it('refuses a --sick-answer that is neither a 5xx status nor a fault', async () => {
    const { SETTINGS } = await import('../../src/config/settings.ts');
    const setting = SETTINGS.find((s) => s.key === 'sickAnswer')!;
    for (const bad of ['200', '404', 'truncate:1', 'reset:NOPE', 'goaway'])
      assert.throws(() => setting.parse(bad), bad);
    assert.equal(setting.parse('reset:refused_stream'), 'reset:REFUSED_STREAM');
  });
});
