// `npm run bench:profile`: where a small GET spends its CPU. Runs an unminified
// bundle of echo-server, then the baseline, each under the same wrk load with
// `--cpu-prof`, and prints self time by owner: each of our source modules, each
// library, Node's JavaScript internals, native calls (socket writes are most of
// these) and the garbage collector. Loopback only; each run lasts DURATION seconds.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const PORT = 18_480;

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[] }

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

async function profile(args: string[], bundleName: string | null, marks: { line: number; owner: string }[], path: string): Promise<Map<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'echo-prof-'));
  const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', dir, ...args], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 700));
  execFileSync('wrk', ['-t1', '-c50', `-d${DURATION}s`, `http://127.0.0.1:${PORT}${path}`], { stdio: 'ignore' });
  child.kill('SIGINT');
  await new Promise((r) => child.once('exit', r));
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  for (const id of p.samples) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)' || f.functionName === '(program)' || f.functionName === '(root)') continue;
    busy++;
    let owner: string;
    if (f.functionName === '(garbage collector)') owner = 'garbage collector';
    else if (f.url === '') owner = `native: ${f.functionName}`;
    else if (bundleName !== null && f.url.endsWith(bundleName)) owner = ownerOf(marks, f.lineNumber);
    else if (f.url.startsWith('node:') || !f.url.includes('/')) owner = 'node internals (JS)';
    else owner = f.url.split('/').pop()!;
    self.set(owner, (self.get(owner) ?? 0) + 1);
  }
  for (const [k, v] of self) self.set(k, v / busy);
  return self;
}

const out = join(mkdtempSync(join(tmpdir(), 'echo-prof-build-')), 'echo-server.cjs');
execFileSync(process.execPath, ['scripts/build.ts', '--no-minify', '--outfile', out], { stdio: 'ignore' });
const marks = moduleMap(readFileSync(out, 'utf8'));
// The baseline exits on SIGINT without a handler, which would lose its profile.
const echo = await profile([out, '--port', String(PORT), '--host', '127.0.0.1'], 'echo-server.cjs', marks, '/');
const base = await profile(['--import', 'data:text/javascript,process.on("SIGINT",()=>process.exit(0))', 'bench/baseline.mjs', String(PORT)], null, [], '/');

const owners = [...new Set([...echo.keys(), ...base.keys()])].sort((a, b) => (echo.get(b) ?? 0) - (echo.get(a) ?? 0));
console.log(`Self time of busy samples under wrk -c50 (${DURATION}s), small GET, access log on:\n`);
console.log('| owner | echo-server | baseline |\n|---|---|---|');
for (const o of owners) {
  const e = echo.get(o) ?? 0;
  const b = base.get(o) ?? 0;
  if (e < 0.003 && b < 0.003) continue;
  console.log(`| ${o} | ${(e * 100).toFixed(1)}% | ${(b * 100).toFixed(1)}% |`);
}
