// `npm run bench`: echo-server's production bundle against a bare node:http
// baseline on the same Node, same load generator, same connections and duration,
// rounds interleaved (A B A B A B) to cancel drift. Every figure is reported as a
// ratio to the baseline measured in the same run. Traffic goes to 127.0.0.1 only;
// every load loop is bounded in time and count.
//
// Pinned (the default with 2 or more CPUs and `taskset`): each server runs on CPU 0
// and wrk on the others, so Node's helper threads (GC, libuv) cannot borrow a second
// core and the figures are what a container with a one-CPU limit sees. Unpinned
// figures are kept for the small GETs. Both servers write their stdout to a file
// (echo-server's access log, the way a container's log driver takes it) and run
// with --trace-gc-nvp, whose `allocated=` counts give allocations per request.
//
// Environment: BENCH_DURATION (seconds per round, default 4), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (50), BENCH_PINNED (0 to skip the pinned mode), BENCH_MIX_SECONDS
// (mixed-load length and idle wait, 30), BENCH_IMAGE (an existing image for the
// docker-run-to-healthy figure; BENCH_BUILD_IMAGE=1 builds it when missing), BENCH_QUICK=1
// (only the pinned small GETs, printed: the loop for optimising the hot path; with
// BENCH_QUICK_SCENARIOS=n or BENCH_QUICK_ONLY=<part of a scenario's name, or h2 for the HTTP/2 rows>, BENCH_ECHO_ARGS='--no-access-log ...',
// BENCH_BUNDLE=path), BENCH_GO (0 skips the Go net/http reference; 1 adds it to BENCH_QUICK runs).
//
// The Go reference (bench/go, standard library only) is built into the temporary
// directory when `go` is on PATH, offline (GOPROXY=off, GOTOOLCHAIN=local), and runs
// with GOMAXPROCS=1 on the server CPU in the same rounds as the small GETs.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { MAX_REQUEST_SERIES } from '../src/ops/metrics.ts';
import type { GrpcRow } from './grpc.ts';
import { requestQuantiles } from './h2load-log.ts';
import type { L4Row } from './l4.ts';
import { mixedLoad, type MixCounts } from './mixed-load.ts';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const MIX_SECONDS = Number(process.env.BENCH_MIX_SECONDS ?? 30);
const BUNDLE = process.env.BENCH_BUNDLE ?? 'dist/echo-server.cjs';
/** Extra echo-server flags for BENCH_QUICK runs (what a feature costs). */
const ECHO_ARGS = (process.env.BENCH_ECHO_ARGS ?? '').split(' ').filter(Boolean);
const HOST = '127.0.0.1';
const NCPU = cpus().length;
const PINNED =
  NCPU >= 2 &&
  process.env.BENCH_PINNED !== '0' &&
  spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
/** CPU sets: the server on CPU 0, the load generator on the rest. */
const SERVER_CPUS = '0';
const LOAD_CPUS = NCPU > 2 ? `1-${NCPU - 1}` : '1';
const TMP = mkdtempSync(join(tmpdir(), 'echo-bench-'));

/** echo-server, the same-fields baseline (baseline.mjs), what a user would run instead (article.mjs) and the Go reference (bench/go). */
type Target = 'echo' | 'baseline' | 'article' | 'go';
/** The memory, startup and held-request figures compare with the same-fields baseline only. */
type Duo = 'echo' | 'baseline';

interface StartOptions {
  pin?: boolean;
  /** Extra echo-server flags. */
  args?: string[];
  traceGc?: boolean;
  /** Cleartext HTTP/2 port for the baseline (mixed load). */
  h2?: boolean;
  /** article.mjs's h2c port, TLS port, key and certificate files. */
  articleArgs?: string[];
}

interface Server {
  target: Target;
  child: ChildProcess;
  port: number;
  h2port: number;
  logFile: string;
  logFd: number;
  /** performance.now() at spawn: --trace-gc lines count ms from about then. */
  spawnedAt: number;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  rssMb: number;
  cpuUsPerReq: number;
  allocKbPerReq: number | null;
}

interface Scenario {
  name: string;
  shape(target: Target): LoadShape;
  /** The Go net/http reference runs this row too. */
  go?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The built Go reference, or null with `goStatus` saying why it is not measured. */
let goBin: string | null = null;
let goStatus = 'not built';

function goBinary(): string {
  if (goBin === null) throw new Error('the Go reference is not built');
  return goBin;
}

/**
 * Build bench/go into the temporary directory: standard library only, so offline
 * (GOPROXY=off) with the installed toolchain (GOTOOLCHAIN=local), its caches in the
 * temporary directory too, so nothing is left in $HOME. No cgo: no C toolchain needed.
 */
function buildGo(): void {
  if (process.env.BENCH_GO === '0') {
    goStatus = 'skipped: BENCH_GO=0';
    return;
  }
  if (spawnSync('sh', ['-c', 'command -v go'], { stdio: 'ignore' }).status !== 0) {
    goStatus = 'skipped: go not on PATH (Debian: golang-go)';
    return;
  }
  const env = {
    ...process.env,
    GOCACHE: join(TMP, 'go-cache'),
    GOPATH: join(TMP, 'go-path'),
    GOTOOLCHAIN: 'local',
    GOPROXY: 'off',
    GOFLAGS: '',
    CGO_ENABLED: '0',
  };
  const bin = join(TMP, 'echo-go');
  const built = spawnSync('go', ['build', '-o', bin, '.'], {
    cwd: 'bench/go',
    env,
    encoding: 'utf8',
    timeout: 5 * 60_000,
  });
  if (built.status !== 0) {
    goStatus = `skipped: go build failed: ${(built.error ? String(built.error) : built.stderr).trim().split('\n').slice(-2).join(' ')}`;
    return;
  }
  const version = spawnSync('go', ['version'], { env, encoding: 'utf8' }).stdout.trim();
  goBin = bin;
  goStatus = `${version.replace(/^go version /, '')}, GOMAXPROCS=1${PINNED ? `, pinned to CPU ${SERVER_CPUS}` : ', unpinned'}`;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, HOST, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function get(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

let serial = 0;
/** Process start to the first 200 from the liveness endpoint, in ms. */
async function startServer(target: Target, opts: StartOptions = {}): Promise<Server & { startMs: number }> {
  const port = await freePort();
  const h2port = target === 'echo' ? port : opts.h2 ? await freePort() : 0;
  const logFile = join(TMP, `${target}-${serial++}.log`);
  // O_APPEND, so truncating the file between measurements keeps later lines at its start.
  const logFd = openSync(logFile, 'a');
  const node = [process.execPath, ...(opts.traceGc ? ['--trace-gc-nvp'] : [])];
  const args =
    target === 'echo'
      ? [...node, BUNDLE, '--port', String(port), '--host', HOST, ...(opts.args ?? [])]
      : target === 'article'
        ? [...node, 'bench/article.mjs', String(port), ...(opts.articleArgs ?? [])]
        : target === 'go'
          ? [goBinary(), String(port)]
          : [...node, 'bench/baseline.mjs', String(port), String(h2port)];
  const argv = PINNED ? ['taskset', '-c', opts.pin ? SERVER_CPUS : `0-${NCPU - 1}`, ...args] : args;
  const start = performance.now();
  // taskset execs node: the child's pid is the server's.
  // GOMAXPROCS=1: one OS thread runs Go code, as one Node process has one JavaScript thread.
  const env = target === 'go' ? { ...process.env, GOMAXPROCS: '1' } : process.env;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', logFd, 'inherit'], env });
  for (;;) {
    if ((await get(port, '/livez')).status === 200) break;
    if (performance.now() - start > 15_000) throw new Error(`${target} did not start`);
    await sleep(2);
  }
  return { target, child, port, h2port, logFile, logFd, spawnedAt: start, startMs: performance.now() - start };
}

function stopServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.child.once('exit', () => {
      closeSync(s.logFd);
      rmSync(s.logFile, { force: true });
      resolve();
    });
    s.child.kill('SIGTERM');
  });
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The process and its children (a --workers primary and its workers). */
function tree(pid: number): number[] {
  const out = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** CPU time (user + system) of a process and its children, in µs. */
function cpuUs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      /* gone */
    }
  }
  return ticks * 10_000; // USER_HZ is 100 on Linux
}

const rssOf = (pids: number[]) => pids.reduce((n, p) => n + rssMb(p), 0);

/** Bytes V8 allocated between two moments (server-relative ms), from --trace-gc-nvp lines. */
function allocatedBetween(s: Server, fromMs: number, toMs: number): number {
  let bytes = 0;
  const text = readFileSync(s.logFile, 'latin1');
  for (const m of text.matchAll(/^\[\d+:[^\]]*\]\s+(\d+) ms: .*? allocated=(\d+)/gm)) {
    const t = Number(m[1]);
    if (t >= fromMs && t <= toMs) bytes += Number(m[2]);
  }
  return bytes;
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

/** One bounded wrk run against loopback (asynchronous: a scraper can run beside it). */
async function wrk(port: number, shape: LoadShape, pin: boolean) {
  const args = [
    'wrk',
    '-t1',
    `-c${shape.connections ?? CONNECTIONS}`,
    `-d${shape.duration ?? DURATION}s`,
    '--timeout',
    '10s',
    '-s',
    'bench/wrk.lua',
    `http://${HOST}:${port}${shape.path ?? '/'}`,
  ];
  const argv = pin && PINNED ? ['taskset', '-c', LOAD_CPUS, ...args] : args;
  const { stdout: out } = await promisify(execFile)(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    env: {
      ...process.env,
      BENCH_METHOD: shape.method ?? 'GET',
      BENCH_BODY: String(shape.body ?? 0),
      BENCH_ACCEPT: shape.accept ?? '*/*',
      BENCH_CLOSE: shape.close ? '1' : '0',
    },
  });
  const line = out.trim().split('\n').pop()!;
  const r = JSON.parse(line) as {
    requests: number;
    durationUs: number;
    bytes: number;
    errors: number;
    p50: number;
    p99: number;
    p999: number;
  };
  const seconds = r.durationUs / 1e6;
  return {
    rps: r.requests / seconds,
    p50: r.p50 / 1000,
    p99: r.p99 / 1000,
    p999: r.p999 / 1000,
    errors: r.errors,
    requests: r.requests,
  };
}

function ensureWrk(): void {
  if (spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0) return;
  if (process.getuid?.() === 0) {
    console.log('bench: installing wrk from Debian');
    execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-qq', 'wrk'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return;
  }
  throw new Error('bench needs wrk: apt-get install wrk');
}

const HEADLINE = 'GET /bench?x=1, text';
const JSON_ROW = 'GET /bench?x=1, JSON';
const PINNED_SCENARIOS: Scenario[] = [
  { name: HEADLINE, shape: () => ({ path: '/bench?x=1' }), go: true },
  { name: JSON_ROW, shape: () => ({ path: '/bench?x=1', accept: 'application/json' }), go: true },
  { name: 'GET /, text', shape: () => ({}) },
  { name: 'POST 64 KiB body', shape: () => ({ method: 'POST', body: 64 * 1024 }) },
  { name: 'GET, new connection per request', shape: () => ({ close: true }) },
  {
    name: 'generated 1 MiB response',
    shape: (t) => ({ path: t === 'echo' ? '/?echo_size=1MiB' : '/1mib', connections: 10 }),
  },
];
const UNPINNED_SCENARIOS = PINNED_SCENARIOS.slice(0, 3);

async function measure(server: Server, scenario: Scenario, pin: boolean): Promise<Sample> {
  const pids = tree(server.child.pid!);
  let peak = rssOf(pids);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pids));
  }, 100);
  ftruncateSync(server.logFd, 0);
  const cpu0 = cpuUs(pids);
  const t0 = performance.now() - server.spawnedAt;
  const r = await wrk(server.port, scenario.shape(server.target), pin);
  const t1 = performance.now() - server.spawnedAt;
  const cpu = cpuUs(pids) - cpu0;
  clearInterval(sampler);
  // V8's counts: one Node process (not a --workers tree, not Go).
  const traced = pids.length === 1 && server.target !== 'go';
  const allocated = traced ? allocatedBetween(server, t0, t1) : 0;
  return {
    ...r,
    rssMb: peak,
    cpuUsPerReq: r.requests > 0 ? cpu / r.requests : 0,
    allocKbPerReq: traced && r.requests > 0 ? allocated / r.requests / 1024 : null,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function aggregate(xs: Sample[]): Sample {
  const allocs = xs.map((x) => x.allocKbPerReq).filter((x): x is number => x !== null);
  return {
    rps: median(xs.map((x) => x.rps)),
    p50: median(xs.map((x) => x.p50)),
    p99: median(xs.map((x) => x.p99)),
    p999: median(xs.map((x) => x.p999)),
    errors: xs.reduce((n, x) => n + x.errors, 0),
    rssMb: Math.max(...xs.map((x) => x.rssMb)),
    cpuUsPerReq: median(xs.map((x) => x.cpuUsPerReq)),
    allocKbPerReq: allocs.length > 0 ? median(allocs) : null,
  };
}

/** `article`: the six-line server, what the ratios are against; `baseline`: the same fields, where the time goes. */
interface Row {
  scenario: string;
  echo: Sample;
  baseline: Sample;
  article: Sample;
  /** The Go net/http reference, on the rows it runs (pinned, when go is on PATH). */
  go?: Sample;
}

/** Every scenario, echo-server and the baselines (and Go, when `withGo` and built) interleaved round by round. */
async function compare(scenarios: Scenario[], pin: boolean, echoArgs: string[] = [], withGo = false): Promise<Row[]> {
  const echo = await startServer('echo', { pin, traceGc: true, args: echoArgs });
  const baseline = await startServer('baseline', { pin, traceGc: true });
  const article = await startServer('article', { pin, traceGc: true });
  const go = withGo && goBin !== null && scenarios.some((s) => s.go) ? await startServer('go', { pin }) : null;
  await sleep(300);
  const rows: Row[] = [];
  try {
    for (const scenario of scenarios) {
      const samples: Record<Target, Sample[]> = { echo: [], baseline: [], article: [], go: [] };
      const servers = [echo, article, baseline, ...(go !== null && scenario.go ? [go] : [])];
      for (let round = 0; round < ROUNDS; round++) {
        for (const server of servers) {
          if (round === 0) await wrk(server.port, { ...scenario.shape(server.target), duration: 1 }, pin); // warm-up
          samples[server.target].push(await measure(server, scenario, pin));
        }
      }
      const row: Row = {
        scenario: scenario.name,
        echo: aggregate(samples.echo),
        baseline: aggregate(samples.baseline),
        article: aggregate(samples.article),
        ...(samples.go.length > 0 ? { go: aggregate(samples.go) } : {}),
      };
      rows.push(row);
      console.log(
        `  ${pin ? 'pinned' : 'unpinned'} ${row.scenario}: ${row.echo.rps.toFixed(0)} vs six-line ${row.article.rps.toFixed(0)} (${(row.echo.rps / row.article.rps).toFixed(2)}), ` +
          `same fields ${row.baseline.rps.toFixed(0)} (${(row.echo.rps / row.baseline.rps).toFixed(2)}) req/s; CPU ${row.echo.cpuUsPerReq.toFixed(1)} vs ${row.article.cpuUsPerReq.toFixed(1)} µs/req` +
          (row.go === undefined
            ? ''
            : `; Go ${row.go.rps.toFixed(0)} req/s (${ratio(row.echo.rps, row.go.rps)}), ${row.go.cpuUsPerReq.toFixed(1)} µs/req`),
      );
    }
  } finally {
    await stopServer(echo);
    await stopServer(baseline);
    await stopServer(article);
    if (go !== null) await stopServer(go);
  }
  return rows;
}

interface H2Row {
  scenario: string;
  echo: Sample;
  article: Sample;
}

/** One bounded h2load run (10 connections x 10 streams); per-request durations from its log give p50/p99. */
function h2load(
  url: string,
  seconds = DURATION,
): Omit<Sample, 'rssMb' | 'cpuUsPerReq' | 'allocKbPerReq'> & { requests: number } {
  const log = join(TMP, 'h2load.log');
  const args = ['h2load', '-D', String(seconds), '-c', '10', '-m', '10', '--log-file', log, url];
  const argv = PINNED ? ['taskset', '-c', LOAD_CPUS, ...args] : args;
  const out = execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const rate = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(out);
  if (done === null || rate === null) throw new Error(`h2load: ${out}`);
  const at = requestQuantiles(log);
  return {
    rps: Number(rate[1]),
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    errors: Number(done[3]) + Number(done[4]),
    requests: Number(done[2]),
  };
}

/** HTTP/2 small GETs (h2c on the plain port, and TLS), echo-server against a bare node:http2 stream server, interleaved. */
async function h2Compare(): Promise<H2Row[]> {
  if (spawnSync('sh', ['-c', 'command -v h2load'], { stdio: 'ignore' }).status !== 0) {
    console.log('  HTTP/2: skipped (h2load is not installed: nghttp2-client)');
    return [];
  }
  const key = join(TMP, 'key.pem');
  const cert = join(TMP, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ],
    { stdio: 'ignore' },
  );
  const [echoTls, h2c, h2tls] = [await freePort(), await freePort(), await freePort()];
  const echo = await startServer('echo', {
    pin: true,
    args: ['--https', '--https-port', String(echoTls), '--tls-cert', cert, '--tls-key', key],
  });
  const article = await startServer('article', { pin: true, articleArgs: [String(h2c), String(h2tls), key, cert] });
  await sleep(300);
  const urls: { scenario: string; echo: string; article: string }[] = [
    {
      scenario: 'HTTP/2 h2c GET /bench?x=1',
      echo: `http://${HOST}:${echo.port}/bench?x=1`,
      article: `http://${HOST}:${h2c}/bench?x=1`,
    },
    {
      scenario: 'HTTP/2 TLS GET /bench?x=1',
      echo: `https://${HOST}:${echoTls}/bench?x=1`,
      article: `https://${HOST}:${h2tls}/bench?x=1`,
    },
  ];
  const rows: H2Row[] = [];
  try {
    for (const u of urls) {
      const samples: Record<'echo' | 'article', Sample[]> = { echo: [], article: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const [server, url] of [
          [echo, u.echo],
          [article, u.article],
        ] as const) {
          const pids = [server.child.pid!];
          if (round === 0) h2load(url, 1); // warm-up
          ftruncateSync(server.logFd, 0);
          const cpu0 = cpuUs(pids);
          const r = h2load(url);
          const cpu = cpuUs(pids) - cpu0;
          samples[server.target as 'echo' | 'article'].push({
            ...r,
            rssMb: rssOf(pids),
            cpuUsPerReq: r.requests > 0 ? cpu / r.requests : 0,
            allocKbPerReq: null,
          });
        }
      }
      const row = { scenario: u.scenario, echo: aggregate(samples.echo), article: aggregate(samples.article) };
      rows.push(row);
      console.log(
        `  ${row.scenario}: ${row.echo.rps.toFixed(0)} vs bare node:http2 ${row.article.rps.toFixed(0)} req/s (${ratio(row.echo.rps, row.article.rps)}), ` +
          `CPU ${row.echo.cpuUsPerReq.toFixed(1)} vs ${row.article.cpuUsPerReq.toFixed(1)} µs/req`,
      );
    }
  } finally {
    await stopServer(echo);
    await stopServer(article);
  }
  return rows;
}

function h2Table(rows: H2Row[]): string[] {
  const lines = [
    '| scenario | req/s (bare node:http2) | **ratio** | p50 ms | p99 ms | p99 ratio | CPU µs / req | ratio | errors |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { scenario, echo: e, article: a } of rows) {
    lines.push(
      `| ${scenario} | ${f(e.rps)} (${f(a.rps)}) | **${ratio(e.rps, a.rps)}** | ${f(e.p50, 2)} (${f(a.p50, 2)}) | ${f(e.p99, 2)} (${f(a.p99, 2)}) | ${ratio(e.p99, a.p99)} | ` +
        `${f(e.cpuUsPerReq, 1)} (${f(a.cpuUsPerReq, 1)}) | ${ratio(e.cpuUsPerReq, a.cpuUsPerReq)} | ${e.errors} (${a.errors}) |`,
    );
  }
  return lines;
}

/** The gRPC and L4 benches, run as they are (each pinned and interleaved the same way); their printed tables are kept. */
function subBench(script: string): string {
  const r = spawnSync(process.execPath, [script], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_BUNDLE: BUNDLE },
    timeout: 15 * 60_000,
  });
  if (r.status !== 0)
    return `${script} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`;
  return r.stdout.trim();
}

interface WorkerRow {
  name: string;
  sample: Sample;
}

/** echo-server with 1 and 2 workers (both balance modes), unpinned: the load generator shares the two cores. */
async function workersCompare(): Promise<WorkerRow[]> {
  const configs: { name: string; args: string[] }[] = [
    { name: '1 process (default)', args: [] },
    { name: '--workers 2 (primary hands out connections)', args: ['--workers', '2', '--worker-balance', 'primary'] },
    { name: '--workers 2 --worker-balance reuseport', args: ['--workers', '2', '--worker-balance', 'reuseport'] },
  ];
  const servers = [];
  for (const c of configs) servers.push(await startServer('echo', { args: c.args }));
  await sleep(300);
  const samples: Sample[][] = configs.map(() => []);
  const scenario = PINNED_SCENARIOS[0]!;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, s] of servers.entries()) {
        if (round === 0) await wrk(s.port, { ...scenario.shape('echo'), duration: 1 }, false);
        samples[i]!.push(await measure(s, scenario, false));
      }
    }
  } finally {
    for (const s of servers) await stopServer(s);
  }
  const rows = configs.map((c, i) => ({ name: c.name, sample: aggregate(samples[i]!) }));
  for (const r of rows)
    console.log(`  workers ${r.name}: ${r.sample.rps.toFixed(0)} req/s, CPU ${r.sample.cpuUsPerReq.toFixed(1)} µs/req`);
  return rows;
}

interface ScrapeFigures {
  series: number;
  bytes: number;
  scrapeMs: number;
  cpuUsPerScrape: number;
  p99Quiet: number;
  p99Scraped: number;
  scrapes: number;
}

/**
 * The cost of /metrics with every request series in use (each method with every
 * status slot, as `echo_status` across methods would make): time and CPU of one
 * scrape, and the p99 of normal requests with and without a scraper hammering it.
 */
async function scrapeCost(): Promise<ScrapeFigures> {
  const s = await startServer('echo', { pin: true });
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'];
    const statuses = [];
    for (let code = 200; code < 600; code++) statuses.push(code);
    let jobs: Promise<unknown>[] = [];
    for (const method of methods) {
      for (const code of statuses) {
        jobs.push(
          new Promise((resolve) => {
            const req = request({ host: HOST, port: s.port, method, path: `/?echo_status=${code}`, agent }, (res) => {
              res.resume();
              res.on('end', resolve);
            });
            req.on('error', resolve);
            req.end();
          }),
        );
        if (jobs.length >= 8) {
          await Promise.all(jobs);
          jobs = [];
        }
      }
    }
    await Promise.all(jobs);
    const first = await get(s.port, '/metrics', agent);
    const series = first.body.split('\n').filter((l) => l.startsWith('echo_http_requests_total{')).length;
    const pids = [s.child.pid!];
    const n = 200;
    const cpu0 = cpuUs(pids);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await get(s.port, '/metrics', agent);
    const scrapeMs = (performance.now() - t0) / n;
    const cpuUsPerScrape = (cpuUs(pids) - cpu0) / n;
    const scenario = PINNED_SCENARIOS[0]!;
    const quiet = await wrk(s.port, scenario.shape('echo'), true);
    let scraping = true;
    let scrapes = 0;
    const scraper = (async () => {
      while (scraping) {
        await get(s.port, '/metrics', agent);
        scrapes++;
      }
    })();
    const loud = await wrk(s.port, scenario.shape('echo'), true);
    scraping = false;
    await scraper;
    agent.destroy();
    return {
      series,
      bytes: Buffer.byteLength(first.body),
      scrapeMs,
      cpuUsPerScrape,
      p99Quiet: quiet.p99,
      p99Scraped: loud.p99,
      scrapes,
    };
  } finally {
    await stopServer(s);
  }
}

interface MixFigures {
  plateauMb: number;
  peakMb: number;
  idleAfterMb: number;
  beforeMb: number;
  counts: MixCounts;
}

/** The mixed load for MIX_SECONDS, then as long idle: RSS plateau (median of the last third), peak, and after. */
async function mixed(target: Target): Promise<MixFigures> {
  const s = await startServer(target, { pin: true, h2: true });
  try {
    await sleep(300);
    const pid = s.child.pid!;
    const beforeMb = rssMb(pid);
    const samples: { t: number; mb: number }[] = [];
    const t0 = performance.now();
    const sampler = setInterval(() => samples.push({ t: performance.now() - t0, mb: rssMb(pid) }), 250);
    const counts = await mixedLoad(
      { port: s.port, h2port: s.h2port, ssePath: target === 'echo' ? '/mix' : '/sse' },
      MIX_SECONDS,
    );
    clearInterval(sampler);
    const last = samples.filter((x) => x.t >= (MIX_SECONDS * 1000 * 2) / 3).map((x) => x.mb);
    await sleep(MIX_SECONDS * 1000);
    return {
      plateauMb: median(last),
      peakMb: Math.max(...samples.map((x) => x.mb)),
      idleAfterMb: rssMb(pid),
      beforeMb,
      counts,
    };
  } finally {
    await stopServer(s);
  }
}

/** 1,000 requests held open by a 5 s delay: RSS while they wait. */
async function heldRequests(
  server: Server,
): Promise<{ idleMb: number; heldMb: number; perRequestKb: number; completed: number }> {
  const pid = server.child.pid!;
  await sleep(300);
  const idleMb = rssMb(pid);
  const agent = new Agent({ keepAlive: false, maxSockets: 1000 });
  const path = server.target === 'echo' ? '/?echo_delay=5s' : '/delay';
  let completed = 0;
  const all = Array.from(
    { length: 1000 },
    () =>
      new Promise<void>((resolve) => {
        const req = request({ host: HOST, port: server.port, path, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) completed++;
            resolve();
          });
        });
        req.setTimeout(15_000, () => req.destroy());
        req.on('error', () => resolve());
        req.end();
      }),
  );
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
  // All 1,000 come from the bench, one client: lift its share so the whole budget is held.
  const s = await startServer(target, target === 'echo' ? { args: ['--max-in-flight-per-client', '1000'] } : {});
  try {
    return await heldRequests(s);
  } finally {
    await stopServer(s);
  }
}

function dockerRunToHealthy(): string {
  const docker = process.env.DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const image = process.env.BENCH_IMAGE ?? `echo-server:${version}`;
  if (spawnSync(docker, ['info'], { stdio: 'ignore' }).status !== 0) return 'skipped (no Docker engine)';
  if (spawnSync(docker, ['image', 'inspect', image], { stdio: 'ignore' }).status !== 0) {
    if (process.env.BENCH_BUILD_IMAGE !== '1') return `skipped (no image ${image}; BENCH_BUILD_IMAGE=1 builds it)`;
    // Build it against the local stand-in bases, as the image tests do.
    const built = spawnSync(process.execPath, ['scripts/image.ts', '--airgap', '--tag', image], {
      stdio: 'ignore',
      env: { ...process.env, DOCKER: docker },
    });
    if (built.status !== 0) return `skipped (building ${image} failed)`;
  }
  const name = `echo-bench-${process.pid}`;
  const start = performance.now();
  execFileSync(docker, ['run', '-d', '--rm', '--name', name, '--health-interval', '100ms', image], { stdio: 'ignore' });
  try {
    for (;;) {
      const status = execFileSync(docker, ['inspect', '--format', '{{.State.Health.Status}}', name], {
        encoding: 'utf8',
      }).trim();
      if (status === 'healthy') return `${(performance.now() - start).toFixed(0)} ms (health interval 100ms)`;
      if (performance.now() - start > 30_000) return 'did not become healthy within 30 s';
    }
  } finally {
    spawnSync(docker, ['rm', '-f', name], { stdio: 'ignore' });
  }
}

interface Report {
  date: string;
  node: string;
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  durationSeconds: number;
  rounds: number;
  connections: number;
  pinned: boolean;
  loadBefore: number[];
  loadAfter: number[];
  benchSeconds: number;
  pinnedRows: Row[];
  unpinnedRows: Row[];
  h2Rows: H2Row[];
  grpc: string;
  grpcRows: GrpcRow[];
  l4: string;
  l4Rows: L4Row[];
  go: string;
  targets: TargetRow[];
  workers: WorkerRow[];
  scrape: ScrapeFigures;
  mix: Record<Duo, MixFigures>;
  mixSeconds: number;
  startupMs: Record<Duo, number>;
  idleRssMb: Record<Duo, number>;
  held: Record<Duo, { idleMb: number; heldMb: number; perRequestKb: number; completed: number }>;
  dockerRunToHealthy: string;
}

async function main(): Promise<void> {
  ensureWrk();
  if (process.env.BENCH_BUNDLE === undefined)
    execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
  const started = new Date();
  const loadBefore = loadavg();
  console.log(
    `bench: ${ROUNDS} interleaved rounds of ${DURATION}s, ${CONNECTIONS} connections, wrk, Node ${process.version}, ` +
      `${PINNED ? `pinned (server on CPU ${SERVER_CPUS}, load on ${LOAD_CPUS})` : 'unpinned only'}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );

  if (process.env.BENCH_QUICK === '1') {
    // Development loop: only the pinned small GETs, printed, nothing written.
    const only = process.env.BENCH_QUICK_ONLY;
    if (only === 'h2') {
      console.log(h2Table(await h2Compare()).join('\n'));
      rmSync(TMP, { recursive: true, force: true });
      return;
    }
    const scenarios =
      only === undefined
        ? PINNED_SCENARIOS.slice(0, Number(process.env.BENCH_QUICK_SCENARIOS ?? 3))
        : PINNED_SCENARIOS.filter((s) => s.name.includes(only));
    // Go only on request here: the quick loop is for echo-server against the six-line server.
    if (process.env.BENCH_GO === '1') buildGo();
    const rows = await compare(scenarios, PINNED, ECHO_ARGS, goBin !== null);
    console.log(table(rows, true).join('\n'));
    if (process.env.BENCH_GO === '1')
      console.log(['', `Go net/http reference: ${goStatus}`, ...(goBin === null ? [] : goTable(rows))].join('\n'));
    console.log(
      `load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    rmSync(TMP, { recursive: true, force: true });
    return;
  }
  const startup: Record<Duo, number[]> = { echo: [], baseline: [] };
  const idle: Record<Duo, number> = { echo: 0, baseline: 0 };
  for (let i = 0; i < 5; i++) {
    for (const target of ['echo', 'baseline'] as const) {
      const s = await startServer(target);
      startup[target].push(s.startMs);
      if (i === 4) {
        await sleep(500);
        idle[target] = rssMb(s.child.pid!);
      }
      await stopServer(s);
    }
  }

  // Go runs in the pinned rounds only: unpinned, GOMAXPROCS=1 would not be one core's figure.
  if (PINNED) buildGo();
  else goStatus = 'skipped: it runs in the pinned rounds, and this run is not pinned';
  console.log(`  Go net/http reference: ${goStatus}`);
  const pinnedRows = PINNED ? await compare(PINNED_SCENARIOS, true, [], goBin !== null) : [];
  const unpinnedRows = await compare(UNPINNED_SCENARIOS, false);
  const h2Rows = await h2Compare();
  rmSync('bench/results/grpc.json', { force: true }); // a failed run must not leave the last run's figures to be read
  const grpc = subBench('bench/grpc.ts');
  const grpcRows =
    !grpc.includes('failed (exit') && existsSync('bench/results/grpc.json')
      ? (JSON.parse(readFileSync('bench/results/grpc.json', 'utf8')) as { rows: GrpcRow[] }).rows
      : [];
  console.log(grpc);
  const l4Out = subBench('bench/l4.ts');
  const l4Ok = !l4Out.includes('failed (exit');
  const l4 = l4Ok && existsSync('bench/results/l4.md') ? readFileSync('bench/results/l4.md', 'utf8').trim() : l4Out;
  const l4Rows =
    l4Ok && existsSync('bench/results/l4.json')
      ? (JSON.parse(readFileSync('bench/results/l4.json', 'utf8')) as { rows: L4Row[] }).rows
      : [];
  console.log(l4);
  const go = goBin === null ? goStatus : `measured: ${goStatus}`;
  const workers = await workersCompare();
  const scrape = await scrapeCost();
  console.log(
    `  scrape: ${scrape.series} series, ${scrape.scrapeMs.toFixed(2)} ms, ${scrape.cpuUsPerScrape.toFixed(0)} µs CPU; p99 ${scrape.p99Quiet.toFixed(1)} -> ${scrape.p99Scraped.toFixed(1)} ms with ${scrape.scrapes} scrapes`,
  );
  // The mixed load is generated in this process: it goes to the load CPUs meanwhile.
  const pinSelf = (cpuList: string) => {
    if (PINNED) execFileSync('taskset', ['-pc', cpuList, String(process.pid)], { stdio: 'ignore' });
  };
  pinSelf(LOAD_CPUS);
  const mix = { echo: await mixed('echo'), baseline: await mixed('baseline') };
  pinSelf(`0-${NCPU - 1}`);
  console.log(`  mixed load: plateau ${mix.echo.plateauMb.toFixed(0)} vs ${mix.baseline.plateauMb.toFixed(0)} MB`);
  // Fresh processes, so the heap grown by the load above does not hide the cost.
  const held = { echo: await heldOn('echo'), baseline: await heldOn('baseline') };
  const docker = dockerRunToHealthy();

  const report: Report = {
    date: started.toISOString(),
    node: process.version,
    cpus: NCPU,
    cpuModel: cpus()[0]?.model ?? '',
    memoryGb: Math.round(totalmem() / 1024 ** 3),
    durationSeconds: DURATION,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    pinned: PINNED,
    loadBefore,
    loadAfter: loadavg(),
    benchSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    pinnedRows,
    unpinnedRows,
    h2Rows,
    grpc,
    grpcRows,
    l4,
    l4Rows,
    go,
    targets: [],
    workers,
    scrape,
    mix,
    mixSeconds: MIX_SECONDS,
    startupMs: { echo: median(startup.echo), baseline: median(startup.baseline) },
    idleRssMb: idle,
    held,
    dockerRunToHealthy: docker,
  };
  report.targets = targets(report);
  const md = markdown(report);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/latest.json', JSON.stringify(report, null, 2) + '\n');
  writeFileSync('bench/results/latest.md', md);
  updateReadme(md);
  rmSync(TMP, { recursive: true, force: true });
  console.log('\n' + md);
}

const f = (n: number, d = 0) => n.toFixed(d);
const ratio = (a: number, b: number) => (b === 0 ? '-' : (a / b).toFixed(2));

function table(rows: Row[], withAlloc: boolean): string[] {
  const lines = [
    `| scenario | req/s (six-line) | **ratio** | same fields: req/s, CPU µs / req | ratio | p50 ms | p99 ms | p99 ratio | CPU µs / req | ratio |${withAlloc ? ' alloc KiB / req | ratio |' : ''} errors |`,
    `|---|---|---|---|---|---|---|---|---|---|${withAlloc ? '---|---|' : ''}---|`,
  ];
  for (const s of rows) {
    const e = s.echo;
    const a = s.article;
    const b = s.baseline;
    const alloc = withAlloc
      ? ` ${e.allocKbPerReq === null ? '-' : f(e.allocKbPerReq, 1)} (${a.allocKbPerReq === null ? '-' : f(a.allocKbPerReq, 1)}) | ${e.allocKbPerReq !== null && a.allocKbPerReq !== null ? ratio(e.allocKbPerReq, a.allocKbPerReq) : '-'} |`
      : '';
    lines.push(
      `| ${s.scenario} | ${f(e.rps)} (${f(a.rps)}) | **${ratio(e.rps, a.rps)}** | ${f(b.rps)}, ${f(b.cpuUsPerReq, 1)} | ${ratio(e.rps, b.rps)} | ${f(e.p50, 2)} (${f(a.p50, 2)}) | ${f(e.p99, 2)} (${f(a.p99, 2)}) | ${ratio(e.p99, a.p99)} | ` +
        `${f(e.cpuUsPerReq, 1)} (${f(a.cpuUsPerReq, 1)}) | ${ratio(e.cpuUsPerReq, a.cpuUsPerReq)} |${alloc} ${e.errors} (${a.errors}) |`,
    );
  }
  return lines;
}

function markdown(r: Report): string {
  const lines = [
    `Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC on ${r.cpus} × ${r.cpuModel.trim()}, ${r.memoryGb} GiB, Node ${r.node}; load average ${r.loadBefore.map((l) => f(l, 2)).join(' ')} before, ` +
      `${r.loadAfter.map((l) => f(l, 2)).join(' ')} after (the machine is shared: compare ratios, not absolute figures); wrk (1 thread), ${r.connections} connections, ` +
      `${r.rounds} interleaved rounds of ${r.durationSeconds} s (medians); the whole bench took ${r.benchSeconds} s. echo-server runs its production bundle with default settings, ` +
      "access log on, written to a file; both servers write their stdout to a file. Values in parentheses and the bold ratios are against what a user would run instead, in the same run: the article's six-line node:http server " +
      '(bench/article.mjs, nothing read, limited or logged); the "same fields" column is bench/baseline.mjs, which renders what echo-server\'s answer holds and echoes bodies, and shows how much of the gap is rendering.',
    '',
  ];
  if (r.pinned) {
    lines.push(
      `**Per core (pinned):** each server on CPU ${SERVER_CPUS}, wrk on CPU ${LOAD_CPUS}. CPU µs / req is user + system time of the server process (from /proc); ` +
        "allocations per request are V8's `allocated=` counts from `--trace-gc-nvp`. The first row is the headline.",
      '',
      ...table(r.pinnedRows, true),
      '',
    );
  }
  if (r.h2Rows.length > 0) {
    lines.push(
      '**HTTP/2 (pinned)**, h2load 10 connections × 10 streams, against a bare node:http2 server on the stream API answering the six lines (h2c, and TLS with ALPN h2):',
      '',
      ...h2Table(r.h2Rows),
      '',
    );
  }
  // bench/grpc.ts's output as it printed it: Markdown tables stay tables, other text is kept preformatted.
  const grpcIsMarkdown = r.grpc.split('\n').some((l) => l.trimStart().startsWith('|'));
  lines.push(
    '**gRPC** (`npm run bench:grpc`, pinned, against a plain @grpc/grpc-js server):',
    '',
    ...(grpcIsMarkdown ? [r.grpc] : ['```', r.grpc, '```']),
    '',
    '**TCP and UDP** (`npm run bench:l4`, against bare node:net and node:dgram echoes):',
    '',
    r.l4,
    '',
  );
  const goRows = r.pinnedRows.filter((row) => row.go !== undefined);
  if (goRows.length > 0)
    lines.push(
      `**Go net/http reference** (bench/go, the article's server in Go's standard library; ${r.go.replace(/^measured: /, '')}), ` +
        'in the same pinned rounds as the rows above. Ratios are against Go; Go has no allocation figure (no --trace-gc-nvp).',
      '',
      ...goTable(r.pinnedRows),
      '',
    );
  else lines.push(`**Go net/http reference:** ${r.go}.`, '');
  lines.push(
    "**Unpinned:** servers and wrk share both cores, so Node's GC and libuv threads can use the second one.",
    '',
    ...table(r.unpinnedRows, false),
    '',
  );
  const w1 = r.workers[0]!.sample;
  lines.push(
    `**Workers** (unpinned, ${HEADLINE}): on ${r.cpus} cores shared with the load generator the gain is bounded; on a host with spare cores it is larger.`,
    '',
    '| echo-server | req/s | vs 1 process | p99 ms | CPU µs / req (all processes) |',
    '|---|---|---|---|---|',
  );
  for (const w of r.workers)
    lines.push(
      `| ${w.name} | ${f(w.sample.rps)} | ${ratio(w.sample.rps, w1.rps)} | ${f(w.sample.p99, 2)} | ${f(w.sample.cpuUsPerReq, 1)} |`,
    );
  const s = r.scrape;
  lines.push(
    '',
    `**Scrape cost** with every \`echo_http_requests_total\` series in use (9 methods × every status 200-599): ${s.series} series in use (at most ${MAX_REQUEST_SERIES} can exist), ` +
      `${f(s.bytes / 1024, 1)} KiB of text, ${f(s.scrapeMs, 2)} ms and ${f(s.cpuUsPerScrape)} µs of server CPU per scrape; p99 of the headline load ${f(s.p99Quiet, 2)} ms without scrapes, ` +
      `${f(s.p99Scraped, 2)} ms with a scraper fetching /metrics back to back (${s.scrapes} scrapes in ${r.durationSeconds} s).`,
  );
  const m = r.mix;
  const mc = m.echo.counts;
  lines.push(
    '',
    `**Memory under a mixed load** (${r.mixSeconds} s of 8 lanes of small GETs, 4 of 16 KiB POSTs, 4 of HTTP/2 streams, 2 of WebSocket churn, 8 of SSE churn; ` +
      `echo-server answered ${mc.gets} GETs, ${mc.posts} POSTs, ${mc.h2} HTTP/2 streams, ${mc.websockets} WebSockets, ${mc.sse} SSE streams, ${mc.errors} errors):`,
    '',
    '| figure | echo-server | baseline | ratio | target |',
    '|---|---|---|---|---|',
    `| RSS plateau (median of the last third) | ${f(m.echo.plateauMb)} MB | ${f(m.baseline.plateauMb)} MB | ${ratio(m.echo.plateauMb, m.baseline.plateauMb)} | ≤ 1.2 |`,
    `| RSS peak | ${f(m.echo.peakMb)} MB | ${f(m.baseline.peakMb)} MB | ${ratio(m.echo.peakMb, m.baseline.peakMb)} | |`,
    `| RSS after ${r.mixSeconds} s idle | ${f(m.echo.idleAfterMb)} MB | ${f(m.baseline.idleAfterMb)} MB | ${ratio(m.echo.idleAfterMb, m.baseline.idleAfterMb)} | |`,
  );
  const h = r.held;
  lines.push(
    '',
    '| figure | echo-server | baseline | target |',
    '|---|---|---|---|',
    `| idle RSS | ${f(r.idleRssMb.echo, 1)} MB | ${f(r.idleRssMb.baseline, 1)} MB | ≤ 60 MB |`,
    `| RSS with 1,000 delayed requests in flight | ${f(h.echo.heldMb, 1)} MB (${f(h.echo.perRequestKb, 1)} KB each, ${h.echo.completed}/1000 answered) | ${f(h.baseline.heldMb, 1)} MB (${f(h.baseline.perRequestKb, 1)} KB each) | ≤ 120 MB |`,
    `| process start to healthy (median of 5) | ${f(r.startupMs.echo)} ms | ${f(r.startupMs.baseline)} ms | ≤ 300 ms |`,
    `| docker run to healthy | ${r.dockerRunToHealthy} | | |`,
  );
  lines.push('', ...targetsTable(r.targets));
  return lines.join('\n') + '\n';
}

/** The pinned rows Go ran, with echo-server's and the six-line server's ratios to it. */
function goTable(rows: Row[]): string[] {
  const lines = [
    '| scenario | Go req/s | echo-server req/s | **echo-server / Go** | six-line / Go | p50 ms (Go) | p99 ms (Go) | p99 ratio | CPU µs / req (Go) | CPU ratio | errors (Go) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const g = row.go;
    if (g === undefined) continue;
    const e = row.echo;
    lines.push(
      `| ${row.scenario} | ${f(g.rps)} | ${f(e.rps)} | **${ratio(e.rps, g.rps)}** | ${ratio(row.article.rps, g.rps)} | ${f(e.p50, 2)} (${f(g.p50, 2)}) | ${f(e.p99, 2)} (${f(g.p99, 2)}) | ${ratio(e.p99, g.p99)} | ` +
        `${f(e.cpuUsPerReq, 1)} (${f(g.cpuUsPerReq, 1)}) | ${ratio(e.cpuUsPerReq, g.cpuUsPerReq)} | ${e.errors} (${g.errors}) |`,
    );
  }
  return lines;
}

/** One target of the issue, with this run's figures. `null`: not measured in this run. */
interface TargetRow {
  target: string;
  /** What the figure is against. */
  against: string;
  /** The smallest req/s (or MB/s, datagrams/s, calls/s) ratio that holds. */
  min: number;
  ratio: number | null;
  /** The same comparison by CPU per request: the other's CPU µs over echo-server's. */
  perCore: number | null;
  p99Ratio: number | null;
  /** Why a figure is missing. */
  note: string;
}

/** The most a p99 may be, as a ratio to what echo-server is compared with. */
const P99_MAX = 1.5;

function targets(r: Report): TargetRow[] {
  const out: TargetRow[] = [];
  const notPinned = r.pinned ? 'not measured in this run' : 'not measured: no pinned run (needs 2 CPUs and taskset)';
  const http = (name: string, target: string, row: { echo: Sample; article: Sample } | undefined, against: string) => {
    out.push({
      target,
      against,
      min: 0.85,
      ratio: row ? row.echo.rps / row.article.rps : null,
      perCore: row ? row.article.cpuUsPerReq / row.echo.cpuUsPerReq : null,
      p99Ratio: row ? row.echo.p99 / row.article.p99 : null,
      note: row ? '' : name.startsWith('HTTP/2') && r.h2Rows.length === 0 ? 'h2load not installed' : notPinned,
    });
  };
  const six = "the article's six-line node:http server";
  http(
    HEADLINE,
    'text small GET ≥ 0.85×',
    r.pinnedRows.find((x) => x.scenario === HEADLINE),
    six,
  );
  http(
    JSON_ROW,
    'JSON small GET ≥ 0.85×',
    r.pinnedRows.find((x) => x.scenario === JSON_ROW),
    six,
  );
  http(
    'HTTP/2 h2c',
    'h2c small GET ≥ 0.85×',
    r.h2Rows.find((x) => x.scenario.includes('h2c')),
    'a bare node:http2 server (stream API)',
  );
  const unary = r.grpcRows.find((x) => x.name.startsWith('unary'));
  out.push({
    target: 'gRPC unary ≥ 1.0×',
    against: 'a plain @grpc/grpc-js server',
    min: 1.0,
    ratio: unary?.ratio.rate ?? null,
    // bench/grpc.ts gives echo-server's CPU per call over grpc-js's; per core is the inverse.
    perCore: unary === undefined || unary.ratio.cpu === 0 ? null : 1 / unary.ratio.cpu,
    p99Ratio: unary?.ratio.p99 ?? null,
    note:
      unary === undefined
        ? `no figures from bench/grpc.ts: ${r.grpc.split('\n')[0]}`
        : 'medians of the per-round ratios (bench/results/grpc.json)',
  });
  for (const row of r.l4Rows.filter((x) => x.kind === 'rate')) {
    // The round trip of the same protocol (and UDP mode) gives the p99.
    const mode = /--udp-mode \w+/.exec(row.name)?.[0];
    const trip = r.l4Rows.find(
      (x) => x.kind === 'roundtrip' && x.protocol === row.protocol && (mode === undefined || x.name.includes(mode)),
    );
    out.push({
      target: `${row.name} ≥ 0.9×`,
      against: row.protocol === 'tcp' ? 'a bare node:net echo' : 'a bare node:dgram echo',
      min: 0.9,
      ratio: row.echo.rate / row.bare.rate,
      perCore: row.echo.cpu > 0 ? row.bare.cpu / row.echo.cpu : null,
      p99Ratio: trip?.echo.p99 !== undefined && trip.bare.p99 ? trip.echo.p99 / trip.bare.p99 : null,
      note: trip ? `p99 from "${trip.name}"` : 'no round-trip row',
    });
  }
  if (!r.l4Rows.some((x) => x.protocol === 'tcp'))
    out.push({
      target: 'TCP ≥ 0.9×',
      against: 'a bare node:net echo',
      min: 0.9,
      ratio: null,
      perCore: null,
      p99Ratio: null,
      note: 'bench/l4.ts gave no rows',
    });
  if (!r.l4Rows.some((x) => x.protocol === 'udp'))
    out.push({
      target: 'UDP ≥ 0.9×',
      against: 'a bare node:dgram echo',
      min: 0.9,
      ratio: null,
      perCore: null,
      p99Ratio: null,
      note: 'bench/l4.ts gave no rows',
    });
  return out;
}

/** "held by 0.12" or "**missed by 0.12**", for a figure that must be at least (or, `atMost`, at most) `bound`. */
function verdict(figure: number | null, bound: number, atMost = false): string {
  if (figure === null || !Number.isFinite(figure)) return '–';
  const margin = atMost ? bound - figure : figure - bound;
  return margin >= 0 ? `held by ${f(margin, 2)}` : `**missed by ${f(-margin, 2)}**`;
}

function targetsTable(rows: TargetRow[]): string[] {
  const lines = [
    `**Targets** (computed from this run's figures above): a ratio is echo-server's rate over the other server's; "per core by CPU" is the other's CPU µs per request over echo-server's, ` +
      `the same comparison as a saturated core would see it, and the steadier figure on a busy machine; p99 ratios must be at most ${P99_MAX}.`,
    '',
    '| target | against | ratio | verdict | per core by CPU | verdict | p99 ratio | verdict (≤ 1.5) | note |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const n = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : f(x, 2));
  for (const t of rows)
    lines.push(
      `| ${t.target} | ${t.against} | ${n(t.ratio)} | ${verdict(t.ratio, t.min)} | ${n(t.perCore)} | ${verdict(t.perCore, t.min)} | ` +
        `${n(t.p99Ratio)} | ${verdict(t.p99Ratio, P99_MAX, true)} | ${t.note} |`,
    );
  return lines;
}

/** Replace the table between the bench markers of docs/benchmarks.md. */
function updateReadme(md: string): void {
  const readme = readFileSync('docs/benchmarks.md', 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const a = readme.indexOf(start);
  const b = readme.indexOf(end);
  if (a < 0 || b < 0) return;
  writeFileSync('docs/benchmarks.md', readme.slice(0, a + start.length) + '\n' + md + readme.slice(b));
  // The page is checked by `npm run lint`: the tables go in formatted, as a person's edit would.
  const prettier = spawnSync(
    process.execPath,
    ['node_modules/prettier/bin/prettier.cjs', '--write', 'docs/benchmarks.md'],
    {
      stdio: 'ignore',
    },
  );
  if (prettier.status !== 0) console.log('  docs/benchmarks.md: prettier failed; run `npm run format`');
}

await main();
