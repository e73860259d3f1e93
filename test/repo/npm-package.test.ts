// The npm package is a CLI: what `npm pack` makes must install with `npm install -g`
// and run with `npx`, holding only what runs (the bundle, not the sources or tests).
// Installing resolves the package's dependencies from npm's cache or registry, the
// same way a user's install does; that is why this lives outside the image build's
// tests, which run with no registry.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '../helpers.ts';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
// The project's Node first on PATH: the bin's `#!/usr/bin/env node` and npm's scripts use it.
const env = {
  ...process.env,
  PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
  npm_config_update_notifier: 'false',
};

describe('npm package', { timeout: 240_000 }, () => {
  let dir = '';
  let tarball = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-npm-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: root,
      env,
      maxBuffer: 16 << 20,
    });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('\n[') + 1)) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = join(dir, packed!.filename);
    files = packed!.files.map((f) => f.path);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let files: string[] = [];

  it('holds the built bundle and no sources, tests or scripts', () => {
    assert.ok(files.includes('dist/echo-server.cjs'), files.join(' '));
    assert.ok(files.includes('dist/self-signed.cjs'));
    const stray = files.filter((f) => /^(src|test|scripts|bench|deploy|docker)\//.test(f));
    assert.deepEqual(stray, []);
  });

  it('installs with npm install -g and serves the echo from the bin on PATH', async () => {
    const prefix = join(dir, 'prefix');
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      env,
      maxBuffer: 16 << 20,
    });
    const bin = join(prefix, 'bin');
    assert.ok((await readdir(bin)).includes('echo-server'));
    // Run by name from an empty directory, as a user would.
    const child = spawn('echo-server', ['--port', '0', '--host', '127.0.0.1'], {
      cwd: dir,
      env: { ...env, PATH: `${bin}${delimiter}${env.PATH}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    try {
      await waitFor(() => out.includes('echo-server started'), 15_000);
      const url = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[0]!;
      const echo = (await (
        await fetch(`${url}/npm-check?x=1`, { headers: { accept: 'application/json' } })
      ).json()) as { path?: string; method?: string };
      assert.equal(echo.method, 'GET');
      assert.match(JSON.stringify(echo), /\/npm-check\?x=1/);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await new Promise<[number | null]>((resolve) => child.once('exit', (c) => resolve([c])));
    assert.equal(code, 0);
  });

  it('runs with npx from the tarball', async () => {
    const { stdout } = await run(
      'npm',
      ['exec', '--yes', '--prefer-offline', `--package=${tarball}`, '--', 'echo-server', '--version'],
      { cwd: dir, env, maxBuffer: 16 << 20 },
    );
    assert.match(stdout, /0\.1\.0|echo-server/);
  });
});
