// `npm run bench`: echo-server's production bundle against a bare node:http
// baseline on the same Node, same load generator, same connections and duration,
// rounds interleaved (A B A B A B) to cancel drift. Every figure is reported as a
// ratio to the baseline measured in the same run. Traffic goes to 127.0.0.1 only;
// every load loop is bounded in time and count.
//
// Load comes from wrk (Debian's package; installed when missing and running as
// root), one thread, so the generator and the server each get one of two cores.
// Environment: BENCH_DURATION (seconds per round, default 4), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (50), BENCH_IMAGE (image for the docker-run-to-healthy figure).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BUNDLE = 'dist/echo-server.cjs';
const HOST = '127.0.0.1';

type Target = 'echo' | 'baseline';

interface Server {
  target: Target;
  child: ChildProcess;
  port: number;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  mbps: number;
  rssMb: number;
  cpuMsPerKReq: number;
}

interface Scenario {
  name: string;
  shape(target: Target): LoadShape;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, HOST, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Process start to the first 200 from the liveness endpoint, in ms. */
async function startServer(target: Target): Promise<Server & { startMs: number }> {
  const port = await freePort();
  const start = performance.now();
  const args = target === 'echo' ? [BUNDLE, '--port', String(port), '--host', HOST] : ['bench/baseline.mjs', String(port)];
  // Access logging stays on (the default); its lines go to /dev/null.
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  for (;;) {
    if ((await get(port, '/livez')) === 200) break;
    if (performance.now() - start > 10_000) throw new Error(`${target} did not start`);
    await sleep(2);
  }
  return { target, child, port, startMs: performance.now() - start };
}

function stopServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.child.once('exit', () => resolve());
    s.child.kill('SIGTERM');
  });
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** CPU time (user + system) of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux
}

interface LoadShape {
  path?: string;
  method?: string;
  body?: number;
  accept?: string;
  close?: boolean;
  connections?: number;
  duration?: number;
}

/** One bounded wrk run against loopback. */
function wrk(port: number, shape: LoadShape) {
  const out = execFileSync('wrk', [
    '-t1', `-c${shape.connections ?? CONNECTIONS}`, `-d${shape.duration ?? DURATION}s`, '--timeout', '10s',
    '-s', 'bench/wrk.lua', `http://${HOST}:${port}${shape.path ?? '/'}`,
  ], {
    encoding: 'utf8',
    env: {
      ...process.env, BENCH_METHOD: shape.method ?? 'GET', BENCH_BODY: String(shape.body ?? 0),
      BENCH_ACCEPT: shape.accept ?? '*/*', BENCH_CLOSE: shape.close ? '1' : '0',
    },
  });
  const line = out.trim().split('\n').pop()!;
  const r = JSON.parse(line) as { requests: number; durationUs: number; bytes: number; errors: number; p50: number; p99: number; p999: number };
  const seconds = r.durationUs / 1e6;
  return {
    rps: r.requests / seconds, p50: r.p50 / 1000, p99: r.p99 / 1000, p999: r.p999 / 1000,
    errors: r.errors, mbps: r.bytes / seconds / 1e6, requests: r.requests,
  };
}

function ensureWrk(): void {
  if (spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0) return;
  if (process.getuid?.() === 0) {
    console.log('bench: installing wrk from Debian');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    return;
  }
  throw new Error('bench needs wrk: apt-get install wrk');
}

const SCENARIOS: Scenario[] = [
  { name: 'GET, text', shape: () => ({}) },
  { name: 'GET, JSON', shape: () => ({ accept: 'application/json' }) },
  { name: 'POST 64 KiB body', shape: () => ({ method: 'POST', body: 64 * 1024 }) },
  { name: 'GET, new connection per request', shape: () => ({ close: true }) },
  { name: 'generated 1 MiB response', shape: (t) => ({ path: t === 'echo' ? '/?echo_size=1MiB' : '/1mib', connections: 10 }) },
];

function measure(server: Server, scenario: Scenario): Sample {
  const pid = server.child.pid!;
  let peak = rssMb(pid);
  const sampler = setInterval(() => { peak = Math.max(peak, rssMb(pid)); }, 100);
  const cpu0 = cpuMs(pid);
  const r = wrk(server.port, scenario.shape(server.target));
  clearInterval(sampler);
  const cpu = cpuMs(pid) - cpu0;
  return { ...r, rssMb: peak, cpuMsPerKReq: r.requests > 0 ? (cpu / r.requests) * 1000 : 0 };
}

/** 1,000 requests held open by a 5 s delay: RSS while they wait. */
async function heldRequests(server: Server): Promise<{ idleMb: number; heldMb: number; perRequestKb: number; completed: number }> {
  const pid = server.child.pid!;
  await sleep(300);
  const idleMb = rssMb(pid);
  const agent = new Agent({ keepAlive: false, maxSockets: 1000 });
  const path = server.target === 'echo' ? '/?echo_delay=5s' : '/delay';
  let completed = 0;
  const all = Array.from({ length: 1000 }, () => new Promise<void>((resolve) => {
    const req = request({ host: HOST, port: server.port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 200) completed++; resolve(); });
    });
    req.setTimeout(15_000, () => req.destroy());
    req.on('error', () => resolve());
    req.end();
  }));
  let heldMb = 0;
  for (let i = 0; i < 20; i++) {
    await sleep(200);
    heldMb = Math.max(heldMb, rssMb(pid));
  }
  await Promise.all(all);
  agent.destroy();
  return { idleMb, heldMb, perRequestKb: ((heldMb - idleMb) * 1024) / 1000, completed };
}

async function heldOn(target: Target) {
  const s = await startServer(target);
  try {
    return await heldRequests(s);
  } finally {
    await stopServer(s);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function dockerRunToHealthy(): string {
  const docker = process.env.DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const image = process.env.BENCH_IMAGE ?? `echo-server:${version}`;
  if (spawnSync(docker, ['info'], { stdio: 'ignore' }).status !== 0) return 'skipped (no Docker engine)';
  if (spawnSync(docker, ['image', 'inspect', image], { stdio: 'ignore' }).status !== 0) {
    // Build it against the local stand-in bases, as the image tests do.
    const built = spawnSync(process.execPath, ['scripts/image.ts', '--airgap', '--tag', image], { stdio: 'ignore', env: { ...process.env, DOCKER: docker } });
    if (built.status !== 0) return `skipped (building ${image} failed)`;
  }
  const name = `echo-bench-${process.pid}`;
  const start = performance.now();
  execFileSync(docker, ['run', '-d', '--rm', '--name', name, '--health-interval', '100ms', image], { stdio: 'ignore' });
  try {
    for (;;) {
      const status = execFileSync(docker, ['inspect', '--format', '{{.State.Health.Status}}', name], { encoding: 'utf8' }).trim();
      if (status === 'healthy') return `${(performance.now() - start).toFixed(0)} ms (health interval 100ms)`;
      if (performance.now() - start > 30_000) return 'did not become healthy within 30 s';
    }
  } finally {
    spawnSync(docker, ['rm', '-f', name], { stdio: 'ignore' });
  }
}

async function main(): Promise<void> {
  ensureWrk();
  execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
  const started = new Date();
  console.log(`bench: ${ROUNDS} interleaved rounds of ${DURATION}s, ${CONNECTIONS} connections, wrk, Node ${process.version}`);

  const startup: Record<Target, number[]> = { echo: [], baseline: [] };
  for (let i = 0; i < 5; i++) {
    for (const target of ['echo', 'baseline'] as const) {
      const s = await startServer(target);
      startup[target].push(s.startMs);
      await stopServer(s);
    }
  }

  const echo = await startServer('echo');
  const baseline = await startServer('baseline');
  await sleep(500);
  const idle = { echo: rssMb(echo.child.pid!), baseline: rssMb(baseline.child.pid!) };

  const results: { scenario: string; echo: Sample; baseline: Sample }[] = [];
  for (const scenario of SCENARIOS) {
    const samples: Record<Target, Sample[]> = { echo: [], baseline: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of [echo, baseline]) {
        wrk(server.port, { ...scenario.shape(server.target), duration: 1 }); // warm-up, not recorded
        samples[server.target].push(measure(server, scenario));
      }
    }
    const agg = (xs: Sample[]): Sample => ({
      rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)),
      p999: median(xs.map((x) => x.p999)), errors: xs.reduce((n, x) => n + x.errors, 0), mbps: median(xs.map((x) => x.mbps)),
      rssMb: Math.max(...xs.map((x) => x.rssMb)), cpuMsPerKReq: median(xs.map((x) => x.cpuMsPerKReq)),
    });
    const row = { scenario: scenario.name, echo: agg(samples.echo), baseline: agg(samples.baseline) };
    results.push(row);
    console.log(`  ${row.scenario}: ${row.echo.rps.toFixed(0)} vs ${row.baseline.rps.toFixed(0)} req/s (${(row.echo.rps / row.baseline.rps).toFixed(2)})`);
  }

  await stopServer(echo);
  await stopServer(baseline);
  // Fresh processes, so the heap grown by the load above does not hide the cost.
  const held = { echo: await heldOn('echo'), baseline: await heldOn('baseline') };
  const docker = dockerRunToHealthy();

  const report = {
    date: started.toISOString(), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '',
    memoryGb: Math.round(totalmem() / 1024 ** 3), durationSeconds: DURATION, rounds: ROUNDS, connections: CONNECTIONS,
    startupMs: { echo: median(startup.echo), baseline: median(startup.baseline) }, idleRssMb: idle, held, dockerRunToHealthy: docker,
    scenarios: results,
  };
  const md = markdown(report);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/latest.json', JSON.stringify(report, null, 2) + '\n');
  writeFileSync('bench/results/latest.md', md);
  updateReadme(md);
  console.log('\n' + md);
}

const f = (n: number, d = 0) => n.toFixed(d);
const ratio = (a: number, b: number) => (b === 0 ? '-' : (a / b).toFixed(2));

function markdown(r: {
  date: string; node: string; cpus: number; cpuModel: string; memoryGb: number; durationSeconds: number; rounds: number; connections: number;
  startupMs: Record<Target, number>; idleRssMb: Record<Target, number>; held: Record<Target, { idleMb: number; heldMb: number; perRequestKb: number; completed: number }>;
  dockerRunToHealthy: string; scenarios: { scenario: string; echo: Sample; baseline: Sample }[];
}): string {
  const lines = [
    `Measured ${r.date.slice(0, 10)} on ${r.cpus} × ${r.cpuModel.trim()}, ${r.memoryGb} GiB, Node ${r.node}; wrk (1 thread), ${r.connections} connections, ` +
    `${r.rounds} interleaved rounds of ${r.durationSeconds} s (medians). echo-server runs its production bundle with default settings, access log on (to /dev/null). ` +
    'Ratios are echo-server ÷ bare node:http baseline from the same run.',
    '',
    '| scenario | req/s | ratio | p50 ms | p99 ms | ratio | p99.9 ms | errors | MB/s | peak RSS MB | CPU ms / 1k req | ratio |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of r.scenarios) {
    const e = s.echo;
    const b = s.baseline;
    lines.push(`| ${s.scenario} | ${f(e.rps)} (base ${f(b.rps)}) | ${ratio(e.rps, b.rps)} | ${f(e.p50, 1)} (${f(b.p50, 1)}) | ${f(e.p99, 1)} (${f(b.p99, 1)}) | ${ratio(e.p99, b.p99)} | ` +
      `${f(e.p999, 1)} (${f(b.p999, 1)}) | ${e.errors} (${b.errors}) | ${f(e.mbps, 1)} (${f(b.mbps, 1)}) | ${f(e.rssMb)} (${f(b.rssMb)}) | ${f(e.cpuMsPerKReq)} (${f(b.cpuMsPerKReq)}) | ${ratio(e.cpuMsPerKReq, b.cpuMsPerKReq)} |`);
  }
  const h = r.held;
  lines.push('',
    '| figure | echo-server | baseline | target |',
    '|---|---|---|---|',
    `| idle RSS | ${f(r.idleRssMb.echo, 1)} MB | ${f(r.idleRssMb.baseline, 1)} MB | ≤ 60 MB |`,
    `| RSS with 1,000 delayed requests in flight | ${f(h.echo.heldMb, 1)} MB (${f(h.echo.perRequestKb, 1)} KB each, ${h.echo.completed}/1000 answered) | ${f(h.baseline.heldMb, 1)} MB (${f(h.baseline.perRequestKb, 1)} KB each) | ≤ 120 MB |`,
    `| process start to healthy (median of 5) | ${f(r.startupMs.echo)} ms | ${f(r.startupMs.baseline)} ms | ≤ 300 ms |`,
    `| docker run to healthy | ${r.dockerRunToHealthy} | | |`,
  );
  return lines.join('\n') + '\n';
}

/** Replace the table between the README's bench markers. */
function updateReadme(md: string): void {
  const readme = readFileSync('README.md', 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < 0) return;
  writeFileSync('README.md', readme.slice(0, a + start.length) + '\n' + md + readme.slice(b));
}

await main();
