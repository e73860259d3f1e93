// `npm run bench:tail`: where a small GET's p99 comes from. The bench's p99 ratio
// mixes two things: with a closed loop of 50 connections, every request waits for
// the answers queued ahead of it, so latency grows with CPU per request (the p50
// ratio shows that part); and the tail, p99 over p50, which grows with pauses that
// hold every connection at once. This runs the article's six-line server,
// echo-server with defaults and echo-server with --access-log false, pinned (server
// on CPU 0, wrk on CPU 1), rounds interleaved, each under `--trace-gc`, and prints
// per server: req/s, p50, p99, p99/p50, and the collector's pauses inside the
// measured window (count, total and longest, scavenges and mark-compacts apart).
// Loopback only; BENCH_DURATION seconds per run (default 4), BENCH_ROUNDS (3).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BUNDLE = process.env.BENCH_BUNDLE ?? 'dist/echo-server.cjs';
const PIN = cpus().length >= 2 && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
const TMP = mkdtempSync(join(tmpdir(), 'echo-bench-tail-'));

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

interface Server {
  name: string;
  args: (port: number) => string[];
}
const SERVERS: Server[] = [
  { name: "the article's six-line server", args: (port) => ['bench/article.mjs', String(port)] },
  {
    name: 'echo-server, defaults',
    args: (port) => ['--disable-sigusr1', BUNDLE, '--host', '127.0.0.1', '--port', String(port)],
  },
  {
    name: 'echo-server, --access-log false',
    args: (port) => [
      '--disable-sigusr1',
      BUNDLE,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--access-log',
      'false',
    ],
  },
];

interface Pauses {
  count: number;
  totalMs: number;
  maxMs: number;
}
interface Run {
  rps: number;
  p50: number;
  p99: number;
  scavenge: Pauses;
  markCompact: Pauses;
}

/** wrk's `--latency` figure for a percentile, in ms. */
function percentile(out: string, p: string): number {
  const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
  if (m === null) throw new Error(`wrk printed no ${p}%: ${out}`);
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/** The pauses `--trace-gc` printed in `text`: `Scavenge ... MB, 0.30 / 0.00 ms` (the first figure is the pause). */
function pauses(text: string, kind: 'Scavenge' | 'Mark-Compact'): Pauses {
  const re = new RegExp(`: ${kind} [^\\n]*?MB, (?:pooled: [\\d.]+ MB, )?([\\d.]+) / [\\d.]+ ms`, 'g');
  const xs = [...text.matchAll(re)].map((m) => Number(m[1]));
  return { count: xs.length, totalMs: xs.reduce((a, b) => a + b, 0), maxMs: Math.max(0, ...xs) };
}

async function run(server: Server): Promise<Run> {
  const port = await freePort();
  // The server's standard output (access log and the collector's trace) goes to a
  // file, as in the bench; what was written before the measured window is skipped.
  const file = join(TMP, 'stdout.log');
  const fd = openSync(file, 'w');
  const argv = [...(PIN ? ['taskset', '-c', '0'] : []), process.execPath, '--trace-gc', ...server.args(port)];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const url = `http://127.0.0.1:${port}/bench?x=1`;
    const wrk = (seconds: number, latency: boolean) =>
      execFileSync(
        PIN ? 'taskset' : 'wrk',
        [...(PIN ? ['-c', '1', 'wrk'] : []), '-t1', '-c50', `-d${seconds}s`, ...(latency ? ['--latency'] : []), url],
        { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
      );
    wrk(1, false); // warm-up: the JIT and the heap settle before the window
    const from = statSync(file).size;
    const out = wrk(DURATION, true);
    const trace = readFileSync(file).subarray(from).toString('latin1');
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
      p50: percentile(out, '50'),
      p99: percentile(out, '99'),
      scavenge: pauses(trace, 'Scavenge'),
      markCompact: pauses(trace, 'Mark-Compact'),
    };
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}

if (spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status !== 0)
  throw new Error('wrk is not installed');
if (process.env.BENCH_BUNDLE === undefined) execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'ignore' });
const before = loadavg().map((l) => l.toFixed(2));
const runs = SERVERS.map(() => [] as Run[]);
try {
  for (let round = 0; round < ROUNDS; round++) for (const [i, s] of SERVERS.entries()) runs[i]!.push(await run(s));
} finally {
  rmSync(TMP, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (x: number, d = 2) => x.toFixed(d);
console.log(
  `p99 and the collector's pauses, wrk -c50 GET /bench?x=1, ${ROUNDS} interleaved rounds of ${DURATION} s (medians)${PIN ? ', pinned' : ''}; ` +
    `load average ${before.join(' ')} before, ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} after. Pauses are per second of load.\n`,
);
console.log(
  '| server | req/s | p50 ms | p99 ms | p99 / p50 | scavenges /s, ms each (longest) | mark-compacts /s, ms each (longest) | GC pause ms /s |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const [i, s] of SERVERS.entries()) {
  const rs = runs[i]!;
  const per = (k: 'scavenge' | 'markCompact') => {
    const n = median(rs.map((r) => r[k].count)) / DURATION;
    const each = median(rs.map((r) => (r[k].count === 0 ? 0 : r[k].totalMs / r[k].count)));
    return `${f(n, 1)}, ${f(each)} (${f(Math.max(...rs.map((r) => r[k].maxMs)))})`;
  };
  const gc = median(rs.map((r) => (r.scavenge.totalMs + r.markCompact.totalMs) / DURATION));
  const p50 = median(rs.map((r) => r.p50));
  const p99 = median(rs.map((r) => r.p99));
  console.log(
    `| ${s.name} | ${f(median(rs.map((r) => r.rps)), 0)} | ${f(p50)} | ${f(p99)} | ${f(median(rs.map((r) => r.p99 / r.p50)))} | ${per('scavenge')} | ${per('markCompact')} | ${f(gc, 1)} |`,
  );
}
