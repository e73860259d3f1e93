// What fleets rely on: a shutdown a load balancer can follow (--shutdown-delay, then a
// drain whose HTTP/1.1 answers say Connection: close), and independent liveness and
// readiness states set by the health control, on the echo and on the probe paths.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NetworkSet } from '../../src/util/addresses.ts';
import { rawRequest, responseComplete, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

function get(port: number, path: string): Promise<string> {
  return rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: t\r\n\r\n`, 3000);
}
const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]);

async function probes(t: TestServer): Promise<[number, number]> {
  const live = await fetch(`${t.url}/livez`);
  const ready = await fetch(`${t.url}/readyz`);
  await live.text();
  await ready.text();
  return [live.status, ready.status];
}

describe('shutdown a load balancer can follow', () => {
  it('fails readiness at once, keeps accepting and serving for the delay, then refuses', async () => {
    const t = await startTestServer({ shutdownDelayMs: 1500, drainTimeoutMs: 2000 });
    const start = performance.now();
    const stopping = t.server.shutdown();
    const ready = await get(t.port, '/readyz');
    assert.equal(statusOf(ready), 503);
    assert.match(ready, /\r\nConnection: close\r\n/i);
    assert.match(ready, /draining\n$/);
    // New connections are still accepted and answered during the delay, and told to close.
    for (let i = 0; i < 3; i++) {
      const echo = await get(t.port, `/during-delay-${i}`);
      assert.equal(statusOf(echo), 200, echo);
      assert.match(echo, /\r\nConnection: close\r\n/i);
      assert.match(echo, new RegExp(`RequestURI: /during-delay-${i}`));
    }
    assert.ok(performance.now() - start < 1500, 'those answers came within the delay');
    assert.equal(await stopping, true);
    assert.ok(
      performance.now() - start >= 1490,
      `stopped accepting only after the delay (${Math.round(performance.now() - start)} ms)`,
    );
    await assert.rejects(fetch(t.url), 'no new connections after the delay');
    assert.equal(t.logs.messages('shutdown delay: still serving, readiness failed').length, 1);
  });

  it('keeps the connections of a trusted proxy alive during the delay, and closes them with the drain', async () => {
    // A reverse proxy balances per request: told to close, it would only reconnect to
    // this replica, and a connection reaching the listener as it closes is reset.
    const t = await startTestServer({
      shutdownDelayMs: 800,
      drainTimeoutMs: 3000,
      trustedProxies: new NetworkSet(['127.0.0.1/32']),
    });
    const stopping = t.server.shutdown();
    const during = await rawRequest(t.port, 'GET /during-delay HTTP/1.1\r\nHost: t\r\n\r\n', {
      timeoutMs: 3000,
      until: responseComplete,
    });
    assert.equal(statusOf(during), 200);
    assert.doesNotMatch(during, /\r\nConnection: close\r\n/i, 'kept alive for the trusted proxy during the delay');
    const late = get(t.port, '/?echo_delay=1200ms');
    await waitFor(() => t.server.app.inFlight === 1);
    const raw = await late;
    assert.equal(statusOf(raw), 200);
    assert.match(raw, /\r\nConnection: close\r\n/i, 'an answer finished in the drain says close');
    assert.equal(await stopping, true);
  });

  it('lets a request that arrives late in the delay finish during the drain', async () => {
    const t = await startTestServer({ shutdownDelayMs: 300, drainTimeoutMs: 3000 });
    const stopping = t.server.shutdown();
    const late = get(t.port, '/?echo_delay=600ms');
    await waitFor(() => t.server.app.inFlight === 1);
    const raw = await late;
    assert.equal(statusOf(raw), 200);
    assert.match(raw, /\r\nConnection: close\r\n/i);
    assert.equal(await stopping, true);
  });

  it('answers a request begun before the drain with Connection: close (no delay set)', async () => {
    const t = await startTestServer({ drainTimeoutMs: 3000 });
    // A keep-alive request, in flight when the drain starts.
    const inflight = get(t.port, '/?echo_delay=400ms');
    await waitFor(() => t.server.app.inFlight === 1);
    const stopping = t.server.shutdown();
    const raw = await inflight;
    assert.equal(statusOf(raw), 200);
    assert.match(raw, /\r\nConnection: close\r\n/i);
    assert.equal(await stopping, true);
  });

  it('the real binary: SIGTERM with --shutdown-delay serves on, then exits 0', async () => {
    const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--shutdown-delay', '800ms'], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exit = once(child, 'exit') as Promise<[number | null]>;
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
    try {
      await waitFor(() => lines.some((l) => l.msg === 'echo-server started'), 10_000);
      const started = lines.find((l) => l.msg === 'echo-server started')!;
      assert.equal((started.config as Record<string, unknown>).shutdownDelayMs, 800);
      const port = Number(new URL((started.listeners as string[])[0]!).port);
      const sent = performance.now();
      child.kill('SIGTERM');
      await waitFor(() => lines.some((l) => l.msg === 'shutting down: draining'), 5000);
      assert.equal(statusOf(await get(port, '/readyz')), 503);
      assert.equal(statusOf(await get(port, '/livez')), 200, 'liveness holds while draining');
      assert.equal(statusOf(await get(port, '/')), 200, 'still serving during the delay');
      const [code] = await exit;
      assert.equal(code, 0);
      assert.ok(performance.now() - sent >= 790, 'the process waited out the delay');
      assert.ok(lines.some((l) => l.msg === 'shutdown complete'));
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('health control states', () => {
  it('unready fails readiness only, fail both, fail-once each check once, ok restores', async () => {
    const t = await startTestServer({ healthControl: true });
    try {
      assert.deepEqual(await probes(t), [200, 200]);
      assert.equal((await fetch(`${t.url}/?echo_health=unready`)).status, 200);
      assert.deepEqual(await probes(t), [200, 503]);
      assert.deepEqual(await probes(t), [200, 503], 'unready holds');
      await fetch(`${t.url}/`, { headers: { 'X-Echo-Health': 'fail' } });
      assert.deepEqual(await probes(t), [503, 503]);
      await fetch(`${t.url}/?echo_health=fail-once`);
      assert.deepEqual(await probes(t), [503, 503], 'each check fails once');
      assert.deepEqual(await probes(t), [200, 200], 'then both pass: fail-once replaced fail');
      await fetch(`${t.url}/?echo_health=unready`);
      await fetch(`${t.url}/?echo_health=ok`);
      assert.deepEqual(await probes(t), [200, 200]);
    } finally {
      await t.close();
    }
  });

  it('is honoured on the probe paths: sets the state and acknowledges, without a check', async () => {
    // Controls off: the probe paths still take the health control, gated by --health-control alone.
    const t = await startTestServer({ healthControl: true, controls: false });
    try {
      const set = await fetch(`${t.url}/readyz?echo_health=unready`);
      assert.equal(set.status, 200);
      assert.equal(await set.text(), 'health: unready\n');
      assert.deepEqual(await probes(t), [200, 503]);
      const viaHeader = await fetch(`${t.url}/livez`, { headers: { 'X-Echo-Health': 'fail' } });
      assert.equal(await viaHeader.text(), 'health: fail\n');
      assert.deepEqual(await probes(t), [503, 503]);
      const bad = await fetch(`${t.url}/livez?echo_health=sideways`);
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /invalid echo_health: .*unready/);
      await fetch(`${t.url}/livez?echo_health=ok`);
      assert.deepEqual(await probes(t), [200, 200]);
    } finally {
      await t.close();
    }
  });

  it('is refused on the probe paths unless the operator enables it', async () => {
    const t = await startTestServer();
    try {
      const res = await fetch(`${t.url}/readyz?echo_health=unready`);
      assert.equal(res.status, 403);
      assert.match(await res.text(), /--health-control/);
      assert.deepEqual(await probes(t), [200, 200]);
    } finally {
      await t.close();
    }
  });

  it('draining fails readiness even when the control says ok', async () => {
    const t = await startTestServer({ healthControl: true, shutdownDelayMs: 300 });
    const stopping = t.server.shutdown();
    assert.equal(statusOf(await get(t.port, '/readyz?echo_health=ok')), 200, 'the control is acknowledged');
    assert.equal(statusOf(await get(t.port, '/readyz')), 503);
    assert.equal(statusOf(await get(t.port, '/livez')), 200);
    await stopping;
  });
});

describe('healthcheck behind the PROXY protocol', () => {
  it('sends a v2 LOCAL header when the HTTP listener requires one', async () => {
    const t = await startTestServer({ proxyProtocol: ['http'] });
    try {
      const { probe } = await import('../../src/healthcheck.ts');
      const { defaultConfig } = await import('../../src/config/settings.ts');
      const withHeader = await probe(defaultConfig({ port: t.port, host: '127.0.0.1', proxyProtocol: ['http'] }));
      assert.equal(withHeader.ok, true, withHeader.detail);
      const without = await probe(defaultConfig({ port: t.port, host: '127.0.0.1', healthcheckTimeoutMs: 2000 }));
      assert.equal(without.ok, false, 'the listener refuses a probe without the header');
    } finally {
      await t.close();
    }
  });
});
