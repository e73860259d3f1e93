// The memory limit as a first-class input, checked in a real container: the
// production bundle on the runtime base image (the image's Node, its ENTRYPOINT
// arguments), under `--memory 128m`, held by 3,000 delayed requests, then flooded
// over h2c by as many connections as it allows (512 of 528), of 100 streams each. The server must read the limit,
// size its in-flight budget, connection limit, HTTP/2 streams and V8 heap from it,
// log them, refuse the excess cleanly (503 + Retry-After, REFUSED_STREAM), keep
// answering a fresh client, and never be OOM-killed.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers.ts';
import { DOCKER, docker, engineAvailable, runCommand } from './docker.ts';

const available = engineAvailable();
const NAME = `es13-memory-${process.pid}`;
const HELD = 3000;
const FLOOD = fileURLToPath(new URL('./h2-flood.ts', import.meta.url));
const MIB = 1024 * 1024;

/** The container's memory use now and at its peak, from its cgroup (v1 or v2), when the host exposes it. */
function cgroupMemory(id: string): { current: number; peak: number } | null {
  for (const [current, peak] of [
    [
      `/sys/fs/cgroup/memory/docker/${id}/memory.usage_in_bytes`,
      `/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`,
    ],
    [
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.current`,
      `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.peak`,
    ],
  ] as const) {
    try {
      return { current: Number(readFileSync(current, 'utf8')), peak: Number(readFileSync(peak, 'utf8')) };
    } catch {
      continue;
    }
  }
  return null;
}

/** Runs the h2c flood (h2-flood.ts) in its own process; resolves with what its client saw. */
function flood(
  port: number,
  connections: number,
  streams: number,
  mode: 'delay' | 'livez',
  seconds: number,
): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [FLOOD, String(port), String(connections), String(streams), mode, String(seconds)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as Record<string, number>);
      else reject(new Error(`the flood client exited ${code}: ${out}`));
    });
  });
}

/** One fresh client (a new connection, HTTP/1.1): its status, or why it got none within 10 s. */
function probe(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve(
          res.statusCode === 503 && res.headers['retry-after'] !== '1'
            ? '503 without Retry-After'
            : String(res.statusCode),
        ),
      );
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

function hold(port: number, n: number): Promise<{ statuses: Record<string, number>; retryAfter: number }> {
  const agent = new Agent({ keepAlive: false, maxSockets: n });
  const statuses: Record<string, number> = {};
  let retryAfter = 0;
  const count = (k: string) => {
    statuses[k] = (statuses[k] ?? 0) + 1;
  };
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<void>((resolve) => {
          const req = request({ host: '127.0.0.1', port, path: `/?echo_delay=4s&i=${i}`, agent }, (res) => {
            if (res.statusCode === 503 && res.headers['retry-after'] === '1') retryAfter++;
            res.resume();
            res.on('end', () => {
              count(String(res.statusCode));
              resolve();
            });
          });
          req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
          req.on('error', (err) => {
            count(err.message);
            resolve();
          });
          req.end();
        }),
    ),
  ).then(() => {
    agent.destroy();
    return { statuses, retryAfter };
  });
}

describe(
  'in a container limited to 128 MiB',
  { skip: !available && process.env.CI !== 'true' ? 'no Docker engine' : false, timeout: 10 * 60_000 },
  () => {
    let dir = '';
    let runtime = '';
    before(async () => {
      assert.ok(available, `CI needs a Docker engine (client ${DOCKER})`);
      const out = execFileSync('bash', ['scripts/airgap-bases.sh'], {
        encoding: 'utf8',
        env: { ...process.env, DOCKER },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      runtime = /^RUNTIME_IMAGE=(.*)$/m.exec(out)![1]!;
      dir = mkdtempSync(join(tmpdir(), 'es13-bundle-'));
      chmodSync(dir, 0o755); // the image's unprivileged user reads it
      const built = await runCommand(process.execPath, ['scripts/build.ts', '--outfile', join(dir, 'echo-server.cjs')]);
      assert.equal(built.code, 0, built.output);
    });
    after(async () => {
      await docker('rm', '-f', NAME).catch(() => '');
      await docker('rm', '-f', `${NAME}-h2`).catch(() => '');
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it('sizes the in-flight budget, connection limit and heap from the limit, refuses the excess, and is not OOM-killed', async () => {
      await docker(
        'run',
        '-d',
        '--name',
        NAME,
        '--memory',
        '128m',
        '--memory-swap',
        '128m',
        '-p',
        '127.0.0.1::8080',
        '-v',
        `${dir}:/app:ro`,
        '--entrypoint',
        '/nodejs/bin/node',
        runtime,
        '--disable-sigusr1',
        '/app/echo-server.cjs',
        '--no-access-log',
        // Every request comes from this one client: without this its share (a tenth) would hold the load below the budget.
        '--max-in-flight-per-client',
        '1000000',
        // The same for its share of the connections (a tenth of --max-connections).
        '--max-connections-per-client',
        '1000000',
        // The automatic limit (528) leaves room for as many HTTP/2 sessions; HTTP/1.1
        // connections cost less, so more are allowed here and the in-flight budget refuses.
        '--max-connections',
        '1024',
      );
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', NAME, '8080/tcp'))![1]);
      const startLine = await waitFor(
        async () =>
          (await docker('logs', NAME))
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l.msg === 'echo-server started'),
        45_000,
        'the startup log line',
        100,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await docker('logs', NAME)}`);
      });
      const resources = startLine.resources as {
        memoryLimitMiB: number;
        maxInFlight: number;
        maxInFlightAuto: boolean;
        heapLimitMiB: number;
      };
      assert.equal(resources.memoryLimitMiB, 128);
      assert.equal(resources.maxInFlightAuto, true);
      assert.equal(resources.maxInFlight, 682, '(128 - 64) MiB / 96 KiB per request');
      // V8 alone would allow about 259 MiB here; the server restarted itself with 64 MiB of old space.
      assert.ok(resources.heapLimitMiB < 100, `heap limit ${resources.heapLimitMiB} MiB`);
      const pid1 = await docker('inspect', '--format', '{{.State.Pid}}', NAME);

      const { statuses, retryAfter } = await hold(port, HELD);
      assert.equal(statuses['200'], 682, JSON.stringify(statuses));
      // --max-connections is 1024 here: connections beyond it are closed at once,
      // those within it but over the in-flight budget get 503 (and free their place).
      const refusedAtConnect =
        (statuses['socket hang up'] ?? 0) + (statuses.ECONNRESET ?? 0) + (statuses['read ECONNRESET'] ?? 0);
      assert.equal((statuses['503'] ?? 0) + refusedAtConnect, HELD - 682, JSON.stringify(statuses));
      assert.ok((statuses['503'] ?? 0) > 0 && refusedAtConnect > 0, JSON.stringify(statuses));
      assert.equal(retryAfter, statuses['503'], 'every refusal says Retry-After: 1');

      const state = JSON.parse(await docker('inspect', '--format', '{{json .State}}', NAME)) as {
        OOMKilled: boolean;
        Running: boolean;
        RestartCount?: number;
        Pid: number;
      };
      assert.equal(state.OOMKilled, false);
      assert.equal(state.Running, true);
      assert.equal(String(state.Pid), pid1, 'the same process throughout');
      // The cgroup's own high-water mark (v1 or v2), when the host exposes it.
      const id = await docker('inspect', '--format', '{{.Id}}', NAME);
      for (const file of [
        `/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`,
        `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.peak`,
      ]) {
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

    it('holds as many h2c connections as --max-connections auto allows x 100 streams of delayed GETs and of bodiless POST /livez without an OOM kill, answering a fresh client', async (t) => {
      const name = `${NAME}-h2`;
      await docker(
        'run',
        '-d',
        '--name',
        name,
        '--memory',
        '128m',
        '--memory-swap',
        '128m',
        '-p',
        '127.0.0.1::8080',
        '-v',
        `${dir}:/app:ro`,
        '--entrypoint',
        '/nodejs/bin/node',
        runtime,
        '--disable-sigusr1',
        '/app/echo-server.cjs',
        '--no-access-log',
        // Sessions left closing after the flood (GOAWAY sent, the client gone behind
        // docker-proxy, which keeps the server's side open) end by the idle timeout: a
        // short one (above --max-delay, as it must be) keeps the wait below short.
        '--max-delay',
        '20s',
        '--idle-timeout',
        '25s',
        // The flood comes from this one client (the Docker gateway): its share of the
        // connections (a tenth) would keep it below the limit this test fills.
        '--max-connections-per-client',
        '1000000',
      );
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', name, '8080/tcp'))![1]);
      const startLine = await waitFor(
        async () =>
          (await docker('logs', name))
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l.msg === 'echo-server started'),
        45_000,
        'the startup log line',
        100,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await docker('logs', name)}`);
      });
      const resources = startLine.resources as {
        maxConnections: number;
        maxConnectionsAuto: boolean;
        h2MaxStreams: number;
      };
      assert.equal(resources.maxConnectionsAuto, true);
      assert.equal(resources.maxConnections, 528, '(128 - 64) MiB / (64 KiB per connection + 10 streams x 6 KiB)');
      assert.equal(resources.h2MaxStreams, 10, '((128 - 64) MiB / 528 connections - 64 KiB) / 6 KiB per stream');
      // The flood takes every connection the limit allows but a few, which the fresh client uses.
      const sessions = resources.maxConnections - 16;
      const id = await docker('inspect', '--format', '{{.Id}}', name);
      const pid1 = await docker('inspect', '--format', '{{.State.Pid}}', name);
      const origin = `http://127.0.0.1:${port}`;
      const idle = cgroupMemory(id);

      for (const mode of ['delay', 'livez'] as const) {
        const probes: string[] = [];
        let highest = 0;
        let flooding = true;
        const seen = flood(port, sessions, 100, mode, 20).finally(() => {
          flooding = false;
        });
        // A fresh client, once a second while the flood lasts: the echo and the liveness check.
        const prober = (async () => {
          while (flooding) {
            probes.push(`/ ${await probe(`${origin}/`)}`, `/livez ${await probe(`${origin}/livez`)}`);
            highest = Math.max(highest, cgroupMemory(id)?.current ?? 0);
            await new Promise((r) => setTimeout(r, 1000)); // pacing the fresh client, not a wait for a condition
          }
        })();
        const client = await seen;
        await prober;
        const state = JSON.parse(await docker('inspect', '--format', '{{json .State}}', name)) as {
          OOMKilled: boolean;
          Running: boolean;
          Pid: number;
          ExitCode: number;
        };
        t.diagnostic(
          `${mode}: client saw ${JSON.stringify(client)}; fresh client ${JSON.stringify(probes.reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {}))}; ` +
            `cgroup memory idle ${Math.round((idle?.current ?? 0) / MIB)} MiB, highest sampled ${Math.round(highest / MIB)} MiB, peak ${Math.round((cgroupMemory(id)?.peak ?? 0) / MIB)} MiB`,
        );
        assert.equal(state.OOMKilled, false, mode);
        assert.equal(state.Running, true, `${mode}: ${await docker('logs', '--tail', '20', name)}`);
        assert.equal(state.ExitCode, 0);
        assert.equal(String(state.Pid), pid1, 'the same process throughout');
        assert.ok(client.peakOpen! >= sessions, `${mode}: ${client.peakOpen} of ${sessions} connections were taken`);
        assert.ok(probes.length >= 4, `${mode}: the fresh client was answered ${probes.length / 2} times`);
        // Held delays fill --max-in-flight (the echo says 503, liveness is never refused by it);
        // bodiless POST /livez fill --max-ops-in-flight (liveness may say 503, the echo is untouched).
        for (const p of probes)
          assert.match(
            p,
            mode === 'delay' ? /^(\/ (200|503)|\/livez 200)$/ : /^(\/ 200|\/livez (200|503))$/,
            `${mode}: a fresh client got ${p}`,
          );
        // Bodiless POST /livez are answered (those over --max-ops-in-flight refused), never held for their body.
        if (mode === 'livez')
          assert.ok(
            (client['status 200'] ?? 0) > 0 && (client['rst 7'] ?? 0) > 0,
            `${mode}: ${JSON.stringify(client)}`,
          );
        // After the flood: the echo answers, and nothing is left in flight but the scrape itself.
        await waitFor(
          async () => (await probe(`${origin}/`)) === '200',
          60_000,
          `${mode}: the echo answering after the flood`,
          500,
        );
        // Then nothing is left behind: no exchange in flight but the scrape, no connection
        // but its own. A stalled answer is cancelled after one idle timeout and its closing
        // session destroyed after another, so two (50 s) bound the wait.
        const left = await waitFor(
          async () => {
            const text = await (await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
            const figure = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
            const now = { inFlight: figure('echo_http_requests_in_flight'), open: figure('echo_open_connections') };
            return now.inFlight === 1 && now.open === 1 ? now : null;
          },
          90_000,
          `${mode}: nothing left in flight or open after the flood`,
          1000,
        );
        t.diagnostic(`${mode}: after the flood ${JSON.stringify(left)}`);
      }
      const peak = cgroupMemory(id)?.peak;
      if (peak !== undefined) assert.ok(peak < 128 * MIB, `peak ${Math.round(peak / MIB)} MiB`);
      await docker('stop', '--time', '20', name);
      assert.equal(await docker('inspect', '--format', '{{.State.ExitCode}}', name), '0');
    });
  },
);
