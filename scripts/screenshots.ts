// Regenerates the README's screenshots (docs/screenshots/*.png): the browser test
// that takes them writes them there, then pngquant (a palette of at most 256
// colours, which UI pictures lose nothing visible to) and optipng shrink them.
// Needs Debian's chromium, pngquant and optipng; installs the last two when missing
// and running as root.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scriptArgs } from './lib/args.ts';

scriptArgs('screenshots', { options: {} }); // takes no arguments: refuses any

const DIR = 'docs/screenshots';
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;

if (!has('pngquant') || !has('optipng')) {
  if (process.getuid?.() !== 0)
    throw new Error('screenshots need pngquant and optipng: apt-get install pngquant optipng');
  console.log('screenshots: installing pngquant and optipng from Debian');
  execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-qq', 'pngquant', 'optipng'], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

// CI=true: a missing Chromium is an error here, not a skipped test and stale pictures.
const run = spawnSync(process.execPath, ['--test', 'test/browser/screenshots.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, CI: 'true', ECHO_SCREENSHOTS_DIR: DIR },
});
if (run.status !== 0) process.exit(run.status ?? 1);

for (const name of readdirSync(DIR)
  .filter((f) => f.endsWith('.png'))
  .sort()) {
  const file = join(DIR, name);
  const before = statSync(file).size;
  // Exit 98 or 99: the result would be larger or too lossy, so the file is left as it was.
  const q = spawnSync(
    'pngquant',
    ['--force', '--skip-if-larger', '--strip', '--speed', '1', '--quality', '70-95', '--output', file, file],
    { stdio: 'inherit' },
  );
  if (q.status !== 0 && q.status !== 98 && q.status !== 99) throw new Error(`pngquant failed on ${file}`);
  execFileSync('optipng', ['-quiet', '-o2', '-strip', 'all', file]);
  console.log(`${file}: ${(before / 1024).toFixed(0)} KiB -> ${(statSync(file).size / 1024).toFixed(0)} KiB`);
}
