// A retrying front against deterministic faults: HAProxy with `retry-on
// conn-failure empty-response` and `retries 3` retries echo_fail_first=2 +
// echo_fault=reset to success exactly as configured, and the server's access log
// shows the two resets and the one success.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';
import { HAPROXY_DEFAULTS, freePort, requireFront, scratch, startFront, type Front } from './fronts.ts';

describe('HAProxy retries against echo_fail_first', () => {
  const { dir, cleanup } = scratch();
  let t: TestServer | undefined;
  let front: Front | undefined;
  let port = 0;
  before(async () => {
    t = await startTestServer();
    port = await freePort();
  });
  after(async () => {
    await front?.stop();
    await t?.close();
    cleanup();
  });

  it('retry-on conn-failure empty-response, retries 3: two resets, then the echo', async (ctx) => {
    if (!requireFront(ctx, 'haproxy')) return;
    front = await startFront(
      'haproxy',
      dir,
      `${HAPROXY_DEFAULTS}
frontend fe
    bind 127.0.0.1:${port}
    default_backend echo
backend echo
    retry-on conn-failure empty-response
    retries 3
    server a 127.0.0.1:${t!.port}
`,
      port,
    );
    const uri = '/?echo_fault=reset&echo_fail_first=2&echo_key=haproxy-1';
    const res = await fetch(`http://127.0.0.1:${port}${uri}`);
    assert.equal(res.status, 200, front.output());
    await res.arrayBuffer();
    const lines = await waitFor(
      () => {
        const l = t!.logs.messages('request').filter((e) => e.uri === uri);
        return l.length >= 3 ? l : null;
      },
      5000,
      'three attempts logged',
    );
    assert.deepEqual(
      lines.map((l) => [l.fault ?? null, l.status]),
      [
        ['reset', 0],
        ['reset', 0],
        [null, 200],
      ],
    );

    // More failures than retries: the client gets HAProxy's error after the first try and 3 retries.
    const short = '/?echo_fault=reset&echo_fail_first=5&echo_key=haproxy-2';
    const failed = await fetch(`http://127.0.0.1:${port}${short}`);
    assert.ok(failed.status >= 500, `${failed.status}`);
    await failed.arrayBuffer();
    const attempts = t!.logs.messages('request').filter((e) => e.uri === short);
    assert.equal(attempts.length, 4, 'the first try and 3 retries');
    assert.ok(attempts.every((l) => l.fault === 'reset'));
  });
});
