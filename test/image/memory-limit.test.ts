// The memory limit as a first-class input, checked in a real container: the
// production bundle on the runtime base image (the image's Node, its ENTRYPOINT
// arguments), under `--memory 128m`, held by 3,000 delayed requests. The server must
// read the limit, size its in-flight budget and V8 heap from it, log them, refuse
// the excess cleanly (503 + Retry-After), and never be OOM-killed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers.ts';
import { DOCKER, docker, engineAvailable, runCommand } from './docker.ts';

const available = engineAvailable();
const NAME = `es13-memory-${process.pid}`;
const HELD = 3000;

function hold(port: number, n: number): Promise<{ statuses: Record<string, number>; retryAfter: number }> {
  const agent = new Agent({ keepAlive: false, maxSockets: n });
  const statuses: Record<string, number> = {};
  let retryAfter = 0;
  const count = (k: string) => { statuses[k] = (statuses[k] ?? 0) + 1; };
  return Promise.all(Array.from({ length: n }, (_, i) => new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: `/?echo_delay=4s&i=${i}`, agent }, (res) => {
      if (res.statusCode === 503 && res.headers['retry-after'] === '1') retryAfter++;
      res.resume();
      res.on('end', () => { count(String(res.statusCode)); resolve(); });
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => { count(err.message); resolve(); });
    req.end();
  }))).then(() => {
    agent.destroy();
    return { statuses, retryAfter };
  });
}

describe('in a container limited to 128 MiB', { skip: !available && process.env.CI !== 'true' ? 'no Docker engine' : false, timeout: 10 * 60_000 }, () => {
  let dir = '';
  let runtime = '';
  before(async () => {
    assert.ok(available, `CI needs a Docker engine (client ${DOCKER})`);
    const out = execFileSync('bash', ['scripts/airgap-bases.sh'], { encoding: 'utf8', env: { ...process.env, DOCKER }, stdio: ['ignore', 'pipe', 'inherit'] });
    runtime = /^RUNTIME_IMAGE=(.*)$/m.exec(out)![1]!;
    dir = mkdtempSync(join(tmpdir(), 'es13-bundle-'));
    chmodSync(dir, 0o755); // the image's unprivileged user reads it
    const built = await runCommand(process.execPath, ['scripts/build.ts', '--outfile', join(dir, 'echo-server.cjs')]);
    assert.equal(built.code, 0, built.output);
  });
  after(async () => {
    await docker('rm', '-f', NAME).catch(() => '');
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('sizes the in-flight budget and heap from the limit, refuses the excess with 503, and is not OOM-killed', async () => {
    await docker('run', '-d', '--name', NAME, '--memory', '128m', '--memory-swap', '128m', '-p', '127.0.0.1::8080',
      '-v', `${dir}:/app:ro`, '--entrypoint', '/nodejs/bin/node', runtime, '--disable-sigusr1', '/app/echo-server.cjs', '--no-access-log',
      // Every request comes from this one client: without this its share (a tenth) would hold the load below the budget.
      '--max-in-flight-per-client', '1000000');
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', NAME, '8080/tcp'))![1]);
    const startLine = await waitFor(async () => (await docker('logs', NAME)).split('\n').filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'echo-server started'), 45_000, 'the startup log line', 100)
      .catch(async (err: Error) => { throw new Error(`${err.message}\n${await docker('logs', NAME)}`); });
    const resources = startLine.resources as { memoryLimitMiB: number; maxInFlight: number; maxInFlightAuto: boolean; heapLimitMiB: number };
    assert.equal(resources.memoryLimitMiB, 128);
    assert.equal(resources.maxInFlightAuto, true);
    assert.equal(resources.maxInFlight, 682, '(128 - 64) MiB / 96 KiB per request');
    // V8 alone would allow about 259 MiB here; the server restarted itself with 64 MiB of old space.
    assert.ok(resources.heapLimitMiB < 100, `heap limit ${resources.heapLimitMiB} MiB`);
    const pid1 = await docker('inspect', '--format', '{{.State.Pid}}', NAME);

    const { statuses, retryAfter } = await hold(port, HELD);
    assert.equal(statuses['200'], 682, JSON.stringify(statuses));
    assert.equal(statuses['503'], HELD - 682, JSON.stringify(statuses));
    assert.equal(retryAfter, HELD - 682, 'every refusal says Retry-After: 1');

    const state = JSON.parse(await docker('inspect', '--format', '{{json .State}}', NAME)) as { OOMKilled: boolean; Running: boolean; RestartCount?: number; Pid: number };
    assert.equal(state.OOMKilled, false);
    assert.equal(state.Running, true);
    assert.equal(String(state.Pid), pid1, 'the same process throughout');
    // The cgroup's own high-water mark (v1 or v2), when the host exposes it.
    const id = await docker('inspect', '--format', '{{.Id}}', NAME);
    for (const file of [`/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`, `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.peak`]) {
      let peak: number;
      try {
        peak = Number(readFileSync(file, 'utf8'));
      } catch {
        continue;
      }
      assert.ok(peak < 120 * 1024 * 1024, `peak ${Math.round(peak / 2 ** 20)} MiB`);
    }
    const live = await fetch(`http://127.0.0.1:${port}/livez`);
    assert.equal(live.status, 200);
    // The restart in place kept PID 1's signal handling: docker stop drains and exits 0.
    await docker('stop', '--time', '20', NAME);
    assert.equal(await docker('inspect', '--format', '{{.State.ExitCode}}', NAME), '0');
  });
});
