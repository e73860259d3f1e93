// `npm run bench:grpc`: gRPC unary calls per second, echo-server's production bundle
// against a plain @grpc/grpc-js server (grpc-baseline.ts) on the same Node, with
// h2load as the load generator (10 connections x 10 streams, the same framed
// EchoRequest), rounds interleaved (A B A B A B) to cancel drift. Pinned when there
// are 2 or more CPUs and taskset: each server on CPU 0, h2load on CPU 1, so the
// figures are what a one-CPU container sees. Traffic to 127.0.0.1 only; each round
// is bounded in time (BENCH_DURATION seconds, default 4; BENCH_ROUNDS, default 3).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BUNDLE = process.env.BENCH_BUNDLE ?? 'dist/echo-server.cjs';
const PINNED =
  cpus().length >= 2 &&
  process.env.BENCH_PINNED !== '0' &&
  spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
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
      ? [process.execPath, BUNDLE, '--port', String(port), '--host', '127.0.0.1', '--no-access-log']
      : [process.execPath, 'bench/grpc-baseline.ts', String(port)];
  const [cmd, ...args] = pinned('0', argv);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('listening') || out.includes('"listeners"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${target} exited ${code}: ${out}`)));
  });
  return child;
}

function load(port: number, body: string): number {
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
    `http://127.0.0.1:${port}/echoserver.v1.Echo/Echo`,
  ]);
  const out = execFileSync(cmd!, args, { encoding: 'utf8', timeout: (DURATION + 30) * 1000 });
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
  const rate = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(out);
  if (done === null || rate === null || done[1] !== done[2]) throw new Error(`h2load: ${out}`);
  return Number(rate[1]);
}

if (spawnSync('sh', ['-c', 'command -v h2load'], { stdio: 'ignore' }).status !== 0)
  throw new Error('h2load is not installed (nghttp2-client)');
if (process.env.BENCH_BUNDLE === undefined) execFileSync(process.execPath, ['scripts/build.ts'], { stdio: 'inherit' });
// An EchoRequest with a 16-byte payload, framed: the same bytes for both servers.
const message = Buffer.concat([Buffer.from([0x0a, 16]), Buffer.alloc(16, 0x61)]);
const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
const body = join(TMP, 'request.bin');
writeFileSync(body, framed);
const rates: Record<string, number[]> = { echo: [], 'grpc-js': [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of ['echo', 'grpc-js'] as const) {
      const port = await freePort();
      const child = await start(target, port);
      try {
        rates[target]!.push(load(port, body));
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
const echo = median(rates.echo!);
const base = median(rates['grpc-js']!);
console.log(
  `gRPC unary Echo, h2load 10 connections x 10 streams, ${DURATION}s x ${ROUNDS} rounds${PINNED ? ', pinned (server CPU 0, h2load CPU 1)' : ', unpinned'}`,
);
console.log(`  echo-server  ${rates.echo!.map((r) => r.toFixed(0)).join(' / ')} calls/s (median ${echo.toFixed(0)})`);
console.log(
  `  grpc-js      ${rates['grpc-js']!.map((r) => r.toFixed(0)).join(' / ')} calls/s (median ${base.toFixed(0)})`,
);
console.log(`  ratio        ${(echo / base).toFixed(2)}`);
