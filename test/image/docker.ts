// Helpers for the image tests: a real Docker engine, driven through its CLI.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { waitFor } from '../helpers.ts';

const exec = promisify(execFile);

/** The docker client: $DOCKER, else Debian's BuildKit-capable /usr/bin/docker, else `docker`. */
export const DOCKER = process.env.DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');

export function engineAvailable(): boolean {
  return spawnSync(DOCKER, ['info'], { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec(DOCKER, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** Runs a command, resolving with its exit status and combined output (never rejects). */
export function runCommand(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Pipes `docker <args>` into `sink <sinkArgs>` and returns the sink's standard output. */
export function pipeDocker(args: string[], sink: string, sinkArgs: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const src = spawn(DOCKER, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const dst = spawn(sink, sinkArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
    src.stdout.pipe(dst.stdin);
    const chunks: Buffer[] = [];
    dst.stdout.on('data', (c: Buffer) => chunks.push(c));
    dst.on('error', reject);
    dst.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${sink} exited ${code}`)),
    );
  });
}

export interface TarEntry {
  mode: string;
  size: number;
  path: string;
  link: string | null;
}

/** Every file of an image, from `docker export` of a created (never started) container. */
export async function listImageFiles(image: string): Promise<TarEntry[]> {
  const id = await docker('create', image);
  try {
    const listing = (await pipeDocker(['export', id], 'tar', ['-tvf', '-'])).toString('utf8');
    return listing.split('\n').filter(Boolean).map(parseTarLine);
  } finally {
    await docker('rm', id);
  }
}

// e.g. "-rwxr-xr-x 0/0   126595440 2026-11-27 01:35 nodejs/bin/node" or "lrwxrwxrwx 0/0 0 ... a -> b"
function parseTarLine(line: string): TarEntry {
  const m = /^(\S+)\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(.*)$/.exec(line);
  if (!m) throw new Error(`unexpected tar line: ${line}`);
  const [, mode = '', size = '0', rest = ''] = m;
  const arrow = rest.indexOf(' -> ');
  const linkArrow = rest.indexOf(' link to ');
  const path =
    '/' + (arrow >= 0 ? rest.slice(0, arrow) : linkArrow >= 0 ? rest.slice(0, linkArrow) : rest).replace(/\/$/, '');
  const link = arrow >= 0 ? rest.slice(arrow + 4) : null;
  return { mode, size: Number(size), path, link };
}

/** Waits until Docker reports the container's health as `want`; resolves with the milliseconds that took. */
export async function waitForStatus(container: string, want: string, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await waitFor(
    async () => (await docker('inspect', '--format', '{{.State.Health.Status}}', container)) === want,
    timeoutMs,
    `${container} becomes ${want}`,
    100,
  );
  return performance.now() - start;
}
