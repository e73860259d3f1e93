// Helpers for the deployment tests: the image built once per run (shared by the test
// files through a lock), free fixed ports where Docker needs one, a bounded load loop.
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOCKER, docker, engineAvailable, runCommand } from '../image/docker.ts';
import { sleep, waitFor } from '../helpers.ts';

/** Every Docker object these tests create is named with this prefix. */
export const PREFIX = process.env.DEPLOY_TEST_PREFIX ?? 'echo-deploy-test';
export const ECHO_IMAGE = `${PREFIX}-echo-server:test`;

/** Skip locally without an engine; in CI (CI=true) a missing engine is a failure. */
export function dockerSkip(): string | false {
  if (engineAvailable() || process.env.CI === 'true') return false;
  process.stderr.write(`\n*** DEPLOY TESTS: no Docker engine reachable through ${DOCKER}; skipping them. ***\n`);
  return 'no Docker engine';
}

/**
 * Runs `fn` holding a lock directory: the test files run in parallel processes, and
 * two builds of the same thing (an mmdebstrap into one cache file) must not overlap.
 */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(tmpdir(), `${PREFIX}-${name}.lock`);
  await waitFor(
    () => {
      try {
        mkdirSync(lock);
        return true;
      } catch {
        // A lock older than the longest build belongs to a run that died.
        try {
          if (Date.now() - statSync(lock).mtimeMs > 20 * 60_000) rmSync(lock, { recursive: true, force: true });
        } catch {
          /* released meanwhile */
        }
        return false;
      }
    },
    20 * 60_000,
    `lock ${lock} released`,
    1000,
  );
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Builds the production image (`npm run image -- --airgap`); after the first, builds are BuildKit cache hits. */
export function buildEchoImage(): Promise<string> {
  return withLock('image', async () => {
    const build = await runCommand(process.execPath, ['scripts/image.ts', '--airgap', '--tag', ECHO_IMAGE], {
      ...process.env,
      DOCKER,
    });
    if (build.code !== 0) throw new Error(`image build failed:\n${build.output.slice(-4000)}`);
    return ECHO_IMAGE;
  });
}

/** The HAProxy image of deploy/swarm, built air-gapped like the stand-in bases. */
export function buildHaproxyImage(): Promise<string> {
  const tag = `${PREFIX}-haproxy:test`;
  return withLock('haproxy', async () => {
    const build = await runCommand('bash', ['scripts/airgap-haproxy.sh', tag], { ...process.env, DOCKER });
    if (build.code !== 0) throw new Error(`HAProxy image build failed:\n${build.output.slice(-4000)}`);
    return tag;
  });
}

/**
 * A port from the fixed range (DEPLOY_TEST_PORTS, default 47200-47299) that can be
 * bound now on all interfaces: Swarm's host-mode ports take no address and no 0.
 */
export async function freeFixedPort(except: readonly number[] = []): Promise<number> {
  const [low, high] = (process.env.DEPLOY_TEST_PORTS ?? '47200-47299').split('-').map(Number) as [number, number];
  for (let port = low; port <= high; port++) {
    // A port picked earlier for the same deployment is free too until it is deployed.
    if (except.includes(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error(`no free port in ${low}-${high}`);
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One GET with a time limit; rejects on network errors and timeouts. */
export function get(
  url: string,
  opts: { agent?: Agent; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent: opts.agent,
        timeout: opts.timeoutMs ?? 10_000,
        headers: { accept: 'application/json', ...opts.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    // A pooled connection the front closed as this request went out is the client's
    // race, not the backend's: say which it was, so a failure can be read.
    req.on('error', (err) =>
      reject(req.reusedSocket ? new Error(`${err.message} (on a reused connection)`, { cause: err }) : err),
    );
    req.end();
  });
}

/** The replica that answered, from the echo's JSON. */
export function hostnameOf(a: Answer): string {
  return (JSON.parse(a.body) as { server: { hostname: string } }).server.hostname;
}

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  seconds: number;
  rate: number;
  failures: string[];
  hostnames: Map<string, number>;
}

/**
 * Continuous load, bounded in time and count: `concurrency` keep-alive workers, paced
 * to `rate` requests per second in total, until `stop()` resolves true (checked each
 * request) and at least `minSeconds` have passed, or `maxSeconds` have passed.
 * `onOk` sees every 200 answer as it comes, so a test can wait until the load reaches
 * the replicas it means to disturb.
 */
export async function load(
  url: string,
  o: {
    rate: number;
    concurrency: number;
    minSeconds: number;
    maxSeconds: number;
    done: () => boolean;
    onOk?: (a: Answer) => void;
  },
): Promise<LoadResult> {
  // Idle pooled connections are closed by the client after 2 s, before HAProxy's own
  // 5 s keep-alive timeout: otherwise a request can go out on a connection HAProxy is
  // closing at that moment, a race between the client and the front (socket hang up)
  // that says nothing about the replicas behind it.
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency, timeout: 2000 });
  const r: LoadResult = { sent: 0, ok: 0, failed: 0, seconds: 0, rate: 0, failures: [], hostnames: new Map() };
  const start = performance.now();
  const maxCount = Math.ceil(o.rate * o.maxSeconds);
  const perWorkerMs = (1000 * o.concurrency) / o.rate;
  const elapsed = () => (performance.now() - start) / 1000;
  const worker = async (w: number) => {
    let next = start + (w * perWorkerMs) / o.concurrency;
    while (r.sent < maxCount && elapsed() < o.maxSeconds && !(elapsed() >= o.minSeconds && o.done())) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait); // pacing the load to its rate, on purpose
      next += perWorkerMs;
      r.sent++;
      try {
        const a = await get(url, { agent, timeoutMs: 10_000 });
        if (a.status === 200) {
          r.ok++;
          const h = hostnameOf(a);
          r.hostnames.set(h, (r.hostnames.get(h) ?? 0) + 1);
          o.onOk?.(a);
        } else {
          r.failed++;
          if (r.failures.length < 20)
            r.failures.push(`${elapsed().toFixed(1)}s: status ${a.status} ${a.body.slice(0, 100)}`);
        }
      } catch (err) {
        r.failed++;
        if (r.failures.length < 20) r.failures.push(`${elapsed().toFixed(1)}s: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  agent.destroy();
  r.seconds = elapsed();
  r.rate = r.sent / r.seconds;
  return r;
}

/** Polls an async condition until it holds, or fails with `what` after `timeoutMs` (the suite's one `waitFor`, argument order kept). */
export function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | null | undefined | false>,
  everyMs = 500,
): Promise<T> {
  return waitFor(check, timeoutMs, what, everyMs) as Promise<T>;
}

export { docker, DOCKER, runCommand };
