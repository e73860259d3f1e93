// Zero means what it says. A zero that would silently remove a safety
// limit (a 0 ms timer, an unlimited message, a hang) is refused with exit status 2
// naming the setting; a zero documented as meaning something ("never", "no body",
// "count only") is accepted and does exactly that on the real server.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { main } from '../../src/cli.ts';
import { rawRequest, waitForInFlight } from '../helpers.ts';
import { exitWithin, get, spawnMain, startedUrl } from './process.ts';

const LOOPBACK = ['--port', '0', '--host', '127.0.0.1'];

/**
 * Runs the CLI as the binary does, with output captured. A configuration that is
 * (wrongly) accepted starts a server: it is stopped through the signal handler and
 * reported as exit status 'served'.
 */
async function cli(argv: string[]): Promise<{ code: number | 'served'; err: string }> {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  let stop: ((signal: string) => void) | undefined;
  let served = false;
  const code = await main([...argv, ...LOOPBACK, '--drain-timeout', '0'], {
    env: {},
    stdout: new PassThrough(),
    stderr,
    logDestination: new PassThrough(),
    onSignal: (handler) => {
      stop = handler;
    },
    onListening: () => {
      served = true;
      setImmediate(() => stop?.('SIGTERM'));
    },
  });
  return { code: served ? 'served' : code, err };
}

describe('zero values', () => {
  const refused: [flag: string, value: string][] = [
    ['headers-timeout', '0'],
    ['request-timeout', '0'],
    ['keep-alive-timeout', '0'],
    ['healthcheck-timeout', '0'],
    ['ws-max-message', '0'],
    ['max-header-size', '0'],
    ['max-header-size', '512'],
    ['sse-interval', '0'],
    ['max-in-flight', '0'],
  ];
  for (const [flag, value] of refused) {
    it(`refuses --${flag} ${value} with exit status 2, naming the setting`, async () => {
      const { code, err } = await cli([`--${flag}`, value]);
      assert.equal(code, 2, `--${flag} ${value} was accepted`);
      assert.match(err, new RegExp(`invalid --${flag}: .*(minimum|out of range)`));
    });
  }

  it('the real binary exits 2 on such a zero from the environment too', async (t: TestContext) => {
    const s = spawnMain(LOOPBACK, { env: { ECHO_HEADERS_TIMEOUT: '0' } });
    t.after(() => s.kill());
    assert.deepEqual(
      await exitWithin(s, 10_000),
      { code: 2, signal: null },
      'exits 2 (a zero headers timeout used to be served)',
    );
    assert.match(s.stderr(), /invalid ECHO_HEADERS_TIMEOUT: .*minimum/);
  });

  it('accepts the documented zeros (the idle timeouts, 0 = never, too); each limit at 0 does what it says: count only, echo event only, no delays, no generated body, no extra headers', async (t: TestContext) => {
    const s = spawnMain([
      ...LOOPBACK,
      '--idle-timeout',
      '0',
      '--ws-idle-timeout',
      '0',
      '--max-echo-body',
      '0',
      '--sse-count',
      '0',
      '--max-delay',
      '0',
      '--max-generated-size',
      '0',
      '--max-response-headers',
      '0',
    ]);
    t.after(() => s.kill());
    const url = await startedUrl(s);
    const config = s.lines.find((l) => l.msg === 'echo-server started')!.config as Record<string, unknown>;
    for (const key of [
      'idleTimeoutMs',
      'wsIdleTimeoutMs',
      'maxEchoBody',
      'sseCount',
      'maxDelayMs',
      'maxGeneratedSize',
      'maxResponseHeaders',
    ]) {
      assert.equal(config[key], 0, key);
    }

    // --max-echo-body 0: the body is counted, not echoed.
    const posted = await get(url, 2000, { method: 'POST', body: 'hello', headers: { accept: 'application/json' } });
    assert.equal(posted.status, 200);
    const body = (JSON.parse(posted.body) as { body: { bytes: number; data: string } }).body;
    assert.equal(body.bytes, 5);
    assert.equal(body.data, '');

    // --sse-count 0: the echo event, then the stream ends (no ticks).
    const sse = await get(url, 2000, { headers: { accept: 'text/event-stream' } });
    assert.deepEqual(
      [...sse.body.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]),
      ['echo', 'done'],
    );

    // --max-delay 0: no delay may be asked for; a zero delay is no delay.
    const delayed = await get(`${url}/?echo_delay=1ms`);
    assert.equal(delayed.status, 400);
    assert.match(delayed.body, /echo_delay/);
    assert.equal((await get(`${url}/?echo_delay=0`)).status, 200);

    // --max-generated-size 0 and --max-response-headers 0.
    assert.equal((await get(`${url}/?echo_size=1`)).status, 400);
    const empty = await get(`${url}/?echo_size=0`);
    assert.deepEqual([empty.status, empty.body], [200, '']);
    assert.equal((await get(`${url}/?echo_header=X-Extra:1`)).status, 400);

    s.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(s, 5000), { code: 0, signal: null });
  });

  it('--max-body-size 0 means no body at all; --drain-timeout 0 closes requests in flight at once', async (t: TestContext) => {
    const s = spawnMain([...LOOPBACK, '--max-body-size', '0', '--drain-timeout', '0', '--idle-timeout', '0']);
    t.after(() => s.kill());
    const url = await startedUrl(s);
    const port = Number(new URL(url).port);

    assert.equal((await get(url, 2000, { method: 'POST', body: 'x' })).status, 413, 'one declared byte');
    assert.equal((await get(url, 2000, { method: 'POST', body: '' })).status, 200, 'an empty body');
    const chunked = await rawRequest(
      port,
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n',
    );
    assert.match(chunked, /^HTTP\/1\.1 413 /, 'one chunked byte');

    const inFlight = fetch(`${url}/?echo_delay=20s`).then(
      (r) => r.status,
      () => 'closed',
    );
    await waitForInFlight(url, 1);
    const start = performance.now();
    s.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(s, 5000), { code: 0, signal: null });
    assert.ok(performance.now() - start < 3000, `exited after ${(performance.now() - start).toFixed(0)} ms`);
    assert.equal(await inFlight, 'closed');
    assert.ok(s.lines.some((l) => l.msg === 'shutting down: draining' && l.drainTimeoutMs === 0));
  });
});
