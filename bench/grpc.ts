// `npm run bench:grpc`: gRPC calls per second, echo-server's production bundle
// against a plain @grpc/grpc-js server (grpc-baseline.ts) on the same Node, with
// h2load as the load generator (10 connections x 10 streams, the same framed
// request), rounds interleaved (A B A B A B) to cancel drift. Two rows: unary Echo
// (calls/s) and ServerStream (messages/s: STREAM_COUNT messages 10 ms apart per
// call, the fastest the service sends). Each also prints the server's CPU µs per
// call or message: user + system time of its process from /proc/PID/stat, read
// before and after the load, divided by what h2load completed. That is the per-core
// figure to believe on a busy machine, where calls/s also measures the starved load
// generator. Pinned when there are 2 or more CPUs and taskset: each server on CPU 0,
// h2load on CPU 1, so the figures are what a one-CPU container sees. Traffic to
// 127.0.0.1 only; each round is bounded in time (BENCH_DURATION seconds, default 4;
// BENCH_ROUNDS, default 3). Each round's per-call durations come from h2load's
// request log, for p50 and p99 (in ms). The medians are also written to
// bench/results/grpc.json, which `npm run bench` reads for its targets.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { requestQuantiles } from './h2load-log.ts';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BUNDLE = process.env.BENCH_BUNDLE ?? 'dist/echo-server.cjs';
const PINNED =
  cpus().length >= 2 &&
  process.env.BENCH_PINNED !== '0' &&
  spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
/** Messages per ServerStream call in the streaming row: --sse-count's default, which caps it. */
const STREAM_COUNT = 10;
const TMP = mkdtempSync(join(tmpdir(), 'echo-bench-grpc-'));

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

function pinned(cpu: string, argv: string[]): string[] {
  return PINNED ? ['taskset', '-c', cpu, ...argv] : argv;
}

async function start(target: 'echo' | 'grpc-js', port: number): Promise<ChildProcess> {
  const argv =
    target === 'echo'
      ? [process.execPath, BUNDLE, '--port', String(port), '--host', '127.0.0.1']
      : [process.execPath, 'bench/grpc-baseline.ts', String(port)];
  const [cmd, ...args] = pinned('0', argv);
  // Defaults, access log on: written to a file, as a container's log driver takes it
  // (a pipe read by this process would put the reading on the bench's side).
  const log = join(TMP, `${target}.log`);
  const fd = openSync(log, 'w');
  const child = spawn(cmd!, args, { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  for (const began = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
    const out = readFileSync(log, 'utf8');
    if (out.includes('listening') || out.includes('"listeners"')) return child;
    if (exited !== undefined || Date.now() - began > 15_000) throw new Error(`${target} did not start: ${out}`);
  }
}

/** CPU time (user + system) of a process so far, in µs; USER_HZ is 100 on Linux. */
function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

interface Round {
  /** Calls completed per second (h2load's req/s). */
  rate: number;
  /** Calls completed. */
  calls: number;
  /** Server CPU µs spent during the load. */
  cpu: number;
  /** Quantiles of the calls' durations, in ms (a stream's: its whole call). */
  p50: number;
  p99: number;
}

const requestLog = join(TMP, 'h2load.log');

function load(pid: number, port: number, body: string, path: string): Round {
  const [cmd, ...args] = pinned('1', [
    'h2load',
    '-D',
    String(DURATION),
    '-c',
    '10',
    '-m',
    '10',
    '-d',
    body,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '--log-file',
    requestLog,
    `http://127.0.0.1:${port}${path}`,
  ]);
  const before = cpuUs(pid);
  const out = execFileSync(cmd!, args, { encoding: 'utf8', timeout: (DURATION + 30) * 1000 });
  const cpu = cpuUs(pid) - before;
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
  const rate = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(out);
  if (done === null || rate === null || done[1] !== done[2]) throw new Error(`h2load: ${out}`);
  const at = requestQuantiles(requestLog);
  return { rate: Number(rate[1]), calls: Number(done[2]), cpu, p50: at(0.5), p99: at(0.99) };
}

if (spawnSync('sh', ['-c', 'command -v h2load'], { stdio: 'ignore' }).status !== 0)
  throw new Error('h2load is not installed (nghttp2-client)');
if (process.env.BENCH_BUNDLE === undefined) execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
// An EchoRequest with a 16-byte payload, framed: the same bytes for both servers.
const framedFile = (name: string, message: Buffer) => {
  const file = join(TMP, name);
  writeFileSync(file, Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]));
  return file;
};
const payload = Buffer.concat([Buffer.from([0x0a, 16]), Buffer.alloc(16, 0x61)]);
const scenarios = [
  {
    name: 'unary Echo',
    unit: 'calls/s',
    per: 'call',
    path: '/echoserver.v1.Echo/Echo',
    body: framedFile('echo.bin', payload),
    messages: 1,
  },
  {
    // count (field 2) and interval_ms 10 (field 3): the fastest the service streams.
    name: `ServerStream, ${STREAM_COUNT} messages 10 ms apart`,
    unit: 'messages/s',
    per: 'message',
    path: '/echoserver.v1.Echo/ServerStream',
    body: framedFile('stream.bin', Buffer.concat([payload, Buffer.from([0x10, STREAM_COUNT, 0x18, 10])])),
    messages: STREAM_COUNT,
  },
] as const;
const targets = ['echo', 'grpc-js'] as const;
const results = scenarios.map(() => ({ echo: [] as Round[], 'grpc-js': [] as Round[] }));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) {
      const port = await freePort();
      const child = await start(target, port);
      try {
        scenarios.forEach((s, i) => results[i]![target].push(load(child.pid!, port, s.body, s.path)));
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
  }
} finally {
  rmSync(TMP, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `gRPC, h2load 10 connections x 10 streams, ${DURATION}s x ${ROUNDS} rounds${PINNED ? ', pinned (server CPU 0, h2load CPU 1)' : ', unpinned'}`,
);
/** One row of bench/results/grpc.json: each server's medians, and echo-server's per-round ratios over grpc-js's (their medians). */
export interface GrpcRow {
  name: string;
  unit: string;
  per: string;
  servers: Record<string, { rate: number; cpu: number; p50: number; p99: number }>;
  ratio: { rate: number; cpu: number; p99: number };
}
const json: GrpcRow[] = [];
scenarios.forEach((s, i) => {
  const rows = targets.map((target) => {
    const rounds = results[i]![target];
    const rates = rounds.map((r) => r.rate * s.messages);
    const cpus = rounds.map((r) => r.cpu / (r.calls * s.messages));
    const p99s = rounds.map((r) => r.p99);
    const p50 = median(rounds.map((r) => r.p50));
    return { target, rates, cpus, p99s, rate: median(rates), cpu: median(cpus), p50, p99: median(p99s) };
  });
  console.log(`${s.name}:`);
  for (const r of rows)
    console.log(
      `  ${r.target.padEnd(12)} ${r.rates.map((x) => x.toFixed(0)).join(' / ')} ${s.unit} (median ${r.rate.toFixed(0)}), ` +
        `CPU ${r.cpus.map((x) => x.toFixed(1)).join(' / ')} µs/${s.per} (median ${r.cpu.toFixed(1)}), ` +
        `p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`,
    );
  const [e, b] = rows as [(typeof rows)[0], (typeof rows)[0]];
  // Each round's two runs are next to each other in time: the median of their ratios
  // is steadier on a busy machine than the ratio of the medians.
  const paired = (a: number[], z: number[]) => median(a.map((x, k) => x / z[k]!));
  const ratio = { rate: paired(e.rates, b.rates), cpu: paired(e.cpus, b.cpus), p99: paired(e.p99s, b.p99s) };
  console.log(
    `  ratio        ${ratio.rate.toFixed(2)} ${s.unit}, ${ratio.cpu.toFixed(2)} CPU µs/${s.per}, ${ratio.p99.toFixed(2)} p99 (medians of the per-round ratios)`,
  );
  json.push({
    name: s.name,
    unit: s.unit,
    per: s.per,
    servers: Object.fromEntries(rows.map((r) => [r.target, { rate: r.rate, cpu: r.cpu, p50: r.p50, p99: r.p99 }])),
    ratio,
  });
});
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/grpc.json',
  `${JSON.stringify({ date: new Date().toISOString(), pinned: PINNED, rows: json }, null, 2)}\n`,
);
