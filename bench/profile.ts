// `npm run bench:profile`: where a small GET spends its CPU. Runs an unminified
// bundle of echo-server, then the baseline, each under the same wrk load with
// `--cpu-prof`, and prints self time by owner: each of our source modules, each
// library, Node's JavaScript internals, native calls (socket writes are most of
// these) and the garbage collector. Only samples taken while the load runs count:
// start-up (module loading, the gRPC descriptors' registry) is not per-request work.
// BENCH_ACCEPT sets the Accept header (application/json profiles the JSON echo);
// BENCH_ECHO_ARGS='--access-log false ...' adds settings to echo-server's command line.
// Loopback only; each run lasts DURATION seconds.
// `--h2` (or BENCH_PROFILE_H2=1): h2c instead, under h2load (10 connections x 10
// streams), against the bare node:http2 stream server of bench/article.mjs.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const PATH = process.env.BENCH_PATH ?? '/bench?x=1';
const ACCEPT = process.env.BENCH_ACCEPT;
const ECHO_ARGS = (process.env.BENCH_ECHO_ARGS ?? '').split(' ').filter(Boolean);
/** Pinned like the bench: the server on CPU 0, wrk on CPU 1 (when there are two). */
const PIN = cpus().length >= 2;
const H2 = process.argv.includes('--h2') || process.env.BENCH_PROFILE_H2 === '1';
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
const PORT = await freePort();

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  /** Microseconds on the monotonic clock process.hrtime reads too. */
  startTime: number;
  timeDeltas: number[];
}

/** Line ranges of each module in an unminified esbuild bundle, from its `// path` markers. */
function moduleMap(bundle: string): { line: number; owner: string }[] {
  const marks: { line: number; owner: string }[] = [];
  bundle.split('\n').forEach((text, line) => {
    const m = /^\s*\/\/ (src\/[\w/.-]+|node_modules\/(?:@[\w.-]+\/)?[\w.-]+)/.exec(text);
    if (m) marks.push({ line, owner: m[1]!.startsWith('src/') ? m[1]! : m[1]!.replace(/^node_modules\//, 'lib ') });
  });
  return marks;
}

function ownerOf(marks: { line: number; owner: string }[], line: number): string {
  let owner = 'bundle';
  for (const m of marks) {
    if (m.line > line) break;
    owner = m.owner;
  }
  return owner;
}

/** Self time of each function, for the echo-server run's table of hottest functions. */
const functions = new Map<string, number>();

async function profile(
  args: string[],
  bundleName: string | null,
  marks: { line: number; owner: string }[],
  path: string,
): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'echo-prof-'));
  // The access log goes to a file, as in the bench.
  const log = openSync(join(dir, 'stdout.log'), 'a');
  const argv = [
    ...(PIN ? ['taskset', '-c', '0'] : []),
    process.execPath,
    '--cpu-prof',
    '--cpu-prof-interval',
    '100',
    '--cpu-prof-dir',
    dir,
    ...args,
  ];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log, 'ignore'] });
  await new Promise((r) => setTimeout(r, 700));
  const url = `http://127.0.0.1:${PORT}${path}`;
  const accept = ACCEPT === undefined ? [] : ['-H', `Accept: ${ACCEPT}`];
  const load = [
    ...(PIN ? ['taskset', '-c', '1'] : []),
    ...(H2
      ? ['h2load', '-D', String(DURATION), '-c', '10', '-m', '10', ...accept, url]
      : ['wrk', '-t1', '-c50', ...accept, `-d${DURATION}s`, url]),
  ];
  const loadFrom = Number(process.hrtime.bigint() / 1000n);
  let report: string;
  try {
    report = execFileSync(load[0]!, load.slice(1), { encoding: 'utf8' });
  } catch (err) {
    // A load generator that is missing or fails must not leave the profiled server running.
    child.kill('SIGKILL');
    throw err;
  }
  // Requests answered: h2load's "N succeeded", wrk's "N requests in".
  const requests = Number((H2 ? /(\d+) succeeded/ : /(\d+) requests in/).exec(report)?.[1] ?? 0);
  child.kill('SIGINT');
  await new Promise((r) => child.once('exit', r));
  closeSync(log);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i]!;
    if (at < loadFrom) continue;
    const f = byId.get(p.samples[i]!)!.callFrame;
    if (f.functionName === '(idle)' || f.functionName === '(program)' || f.functionName === '(root)') continue;
    busy++;
    let owner: string;
    if (f.functionName === '(garbage collector)') owner = 'garbage collector';
    else if (f.url === '') owner = `native: ${f.functionName}`;
    else if (bundleName !== null && f.url.endsWith(bundleName)) owner = ownerOf(marks, f.lineNumber);
    else if (f.url.startsWith('node:') || !f.url.includes('/')) owner = 'node internals (JS)';
    else owner = f.url.split('/').pop()!;
    self.set(owner, (self.get(owner) ?? 0) + 1);
    if (bundleName !== null) {
      const fn = `${owner}: ${f.functionName || '(anonymous)'}${f.url.startsWith('node:') ? ` (${f.url})` : ''}`;
      functions.set(fn, (functions.get(fn) ?? 0) + 1);
    }
  }
  for (const [k, v] of self) self.set(k, v / busy);
  if (bundleName !== null) for (const [k, v] of functions) functions.set(k, v / busy);
  // Samples are 100 µs apart: busy µs per request, with the profiler's own overhead.
  busyUsPerRequest.push(requests > 0 ? (busy * 100) / requests : 0);
  return self;
}

/** Busy µs per request of each run (echo-server, then the baseline). */
const busyUsPerRequest: number[] = [];

const out = join(mkdtempSync(join(tmpdir(), 'echo-prof-build-')), 'echo-server.cjs');
execFileSync(process.execPath, ['scripts/build.ts', '--no-minify', '--outfile', out], { stdio: 'ignore' });
const marks = moduleMap(readFileSync(out, 'utf8'));
// The baseline exits on SIGINT without a handler, which would lose its profile.
const echo = await profile(
  [out, '--port', String(PORT), '--host', '127.0.0.1', ...ECHO_ARGS],
  'echo-server.cjs',
  marks,
  PATH,
);
const base = await profile(
  [
    '--import',
    'data:text/javascript,process.on("SIGINT",()=>process.exit(0))',
    ...(H2 ? ['bench/article.mjs', '0', String(PORT)] : ['bench/baseline.mjs', String(PORT)]),
  ],
  null,
  [],
  PATH,
);

const owners = [...new Set([...echo.keys(), ...base.keys()])].sort((a, b) => (echo.get(b) ?? 0) - (echo.get(a) ?? 0));
console.log(
  `Self time of busy samples under ${H2 ? 'h2load -c10 -m10 (h2c)' : 'wrk -c50'} (${DURATION}s, start-up excluded), GET ${PATH}${ACCEPT === undefined ? '' : `, Accept: ${ACCEPT}`}, access log on (to a file)${PIN ? ', pinned' : ''}:\n`,
);
console.log(
  `Busy CPU per request (profiler on): echo-server ${busyUsPerRequest[0]!.toFixed(1)} µs, ${H2 ? 'bare node:http2' : 'baseline'} ${busyUsPerRequest[1]!.toFixed(1)} µs\n`,
);
console.log(`| owner | echo-server | ${H2 ? 'bare node:http2' : 'baseline'} |\n|---|---|---|`);
for (const o of owners) {
  const e = echo.get(o) ?? 0;
  const b = base.get(o) ?? 0;
  if (e < 0.003 && b < 0.003) continue;
  console.log(`| ${o} | ${(e * 100).toFixed(1)}% | ${(b * 100).toFixed(1)}% |`);
}

console.log('\nHottest echo-server functions (self time, share of busy samples):\n');
console.log('| function | self |\n|---|---|');
for (const [fn, share] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 30))
  console.log(`| ${fn} | ${(share * 100).toFixed(1)}% |`);
