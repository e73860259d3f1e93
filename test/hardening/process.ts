// Helpers for the hardening tests: the real server as a child process, started the
// ways it is started in production, and observed from outside (its output, its exit,
// and what /proc says about its sockets and memory). Every wait is bounded, so a
// server that hangs fails a test instead of hanging the run.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, waitFor } from '../helpers.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = join(REPO, 'src/main.ts');

/**
 * PATH with the running Node (24) first. `env node` in the bundle's shebang and the
 * `node` of the start script then find it whether or not the tests run under npm;
 * the host's own node is older and cannot run the TypeScript sources.
 */
export const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

/** The `npm start` command from package.json, as an argv (it has no shell syntax). */
export function startCommand(): string[] {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return pkg.scripts.start.trim().split(/\s+/);
}

export interface Server {
  child: ChildProcess;
  pid: number;
  /** Everything written to standard error so far. */
  stderr(): string;
  /** Log lines parsed from standard output (empty when stdout is not a pipe read here). */
  lines: Record<string, unknown>[];
  /** Exit code and signal, once it exits. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
  /** SIGKILL if still running; for cleanup hooks. */
  kill(): void;
}

export interface SpawnOptions {
  /** stdout: 'read' parses log lines; 'pipe' makes a pipe nobody reads; or a file descriptor. */
  stdout?: 'read' | 'pipe' | number;
  cwd?: string;
  /** Extra environment variables (PATH is always set). */
  env?: Record<string, string>;
}

/** Starts `cmd args` with Node 24 first on PATH; stderr is always collected. */
export function spawnServer(cmd: string, args: string[], opts: SpawnOptions = {}): Server {
  const out = opts.stdout ?? 'read';
  const stdio: StdioOptions = ['ignore', typeof out === 'number' ? out : 'pipe', 'pipe'];
  const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO, env: { ...opts.env, PATH }, stdio });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const lines: Record<string, unknown>[] = [];
  if (out === 'read') {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          lines.push({ msg: line });
        }
      }
    });
  }
  const server: Server = {
    child,
    pid: child.pid!,
    stderr: () => err,
    lines,
    exited: false,
    exit: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        server.exited = true;
        resolve({ code, signal });
      });
    }),
    kill() {
      if (!server.exited) child.kill('SIGKILL');
    },
  };
  return server;
}

/** The server's entry point run by this Node, like the existing CLI tests. */
export function spawnMain(args: string[], opts: SpawnOptions = {}): Server {
  return spawnServer(process.execPath, [MAIN, ...args], opts);
}

export { sleep };

/** Polls until `check` holds; throws `what` after `timeoutMs` (the suite's one `waitFor`, argument order kept). */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await waitFor(check, timeoutMs, what, 20);
}

/** The exit, or null if it has not happened within `ms`. */
export function exitWithin(
  s: Server,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    s.exit.finally(() => clearTimeout(timer)),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    }),
  ]);
}

/**
 * TCP ports the process itself listens on, from /proc: its socket inodes matched
 * against the LISTEN entries of the namespace's tables. Unlike connecting to a port,
 * this cannot mistake another process's listener for this one's.
 */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return []; // gone
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      // sl local_address rem_address st ... inode; st 0A is LISTEN
      const f = row.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/** The HTTP port of a server started with --port 0 and no other listener, found through /proc. */
export async function httpPort(s: Server, timeoutMs = 10_000): Promise<number> {
  let ports: number[] = [];
  await until(() => s.exited || (ports = listeningPorts(s.pid)).length > 0, timeoutMs, 'the server listens');
  if (s.exited) throw new Error(`the server exited before listening: ${s.stderr()}`);
  return ports[0]!;
}

/** The URL from the startup log line (stdout read), once it is written. */
export async function startedUrl(s: Server, timeoutMs = 10_000): Promise<string> {
  await until(
    () => s.exited || s.lines.some((l) => l.msg === 'echo-server started'),
    timeoutMs,
    'the startup log line',
  );
  const started = s.lines.find((l) => l.msg === 'echo-server started');
  if (started === undefined) throw new Error(`the server exited before starting: ${s.stderr()}`);
  return (started.listeners as string[])[0]!;
}

/**
 * Whether `signal` waits undelivered in the process's pending set, blocked by every
 * one of its threads (from /proc): then no handler can ever run for it, which a test
 * can check at once instead of waiting to see that nothing happens.
 */
export function pendingAndBlocked(pid: number, signal: NodeJS.Signals): boolean {
  const bit = 1n << BigInt(osConstants.signals[signal] - 1);
  const mask = (status: string, field: string) =>
    BigInt(`0x${new RegExp(`^${field}:\\s+([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0'}`);
  try {
    if ((mask(readFileSync(`/proc/${pid}/status`, 'utf8'), 'ShdPnd') & bit) === 0n) return false;
    return readdirSync(`/proc/${pid}/task`).every(
      (tid) => (mask(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'), 'SigBlk') & bit) !== 0n,
    );
  } catch {
    return false; // gone, or a thread ended while being read
  }
}

/** Resident set size in MiB, from /proc (0 once the process is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** GET with a hard time bound: a server that does not answer in time fails the test. */
export async function get(
  url: string,
  timeoutMs = 2000,
  init: RequestInit = {},
): Promise<{ status: number; body: string; ms: number }> {
  const start = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    return { status: res.status, body, ms: performance.now() - start };
  } catch (err) {
    if ((err as Error).name === 'TimeoutError')
      throw new Error(`${init.method ?? 'GET'} ${url.slice(0, 80)} not answered within ${timeoutMs} ms`, {
        cause: err,
      });
    throw err;
  }
}

/** The value of a counter without labels in a Prometheus text exposition (NaN if absent). */
export function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}
