// Real fronts from Debian (nginx, Caddy, HAProxy) in front of echo-server, as users
// run them: a config file the test writes, the program in the foreground on loopback
// ports, stopped by its PID. Never the system services. Missing locally, a front
// skips its tests with a loud message; in CI (CI=true) a missing front is a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../helpers.ts';
import { spawnMain, type Server } from '../hardening/process.ts';

export { freePort };

export type FrontName = 'nginx' | 'caddy' | 'haproxy';

const BINARIES: Record<FrontName, string> = { nginx: 'nginx', caddy: 'caddy', haproxy: 'haproxy' };
/** nginx's stream module (PROXY protocol to the backend), as Debian installs it. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

function found(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether `front` can run here. In CI a missing front throws (.ci/run installs it);
 * locally the test is skipped and says so loudly.
 */
export function requireFront(ctx: { skip(msg: string): void }, front: FrontName, needs: string[] = []): boolean {
  const missing = [BINARIES[front], ...needs].find((n) => (n.startsWith('/') ? !existsSync(n) : !found(n)));
  if (missing === undefined) return true;
  if (process.env.CI === 'true') throw new Error(`${missing} is not available; .ci/run installs ${front}`);
  ctx.skip(`SKIPPED: ${missing} is not available (apt-get install ${front}); the ${front} front tests did not run`);
  console.warn(`\n!!! ${front} front tests skipped: ${missing} is not available\n`);
  return false;
}

/** A scratch directory for one test file's configs; `cleanup` removes it. */
export function scratch(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'echo-fronts-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Front {
  name: FrontName;
  child: ChildProcess;
  /** Everything the front wrote to stdout and stderr so far (its error log, HAProxy's state changes). */
  output(): string;
  stop(): Promise<void>;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export function waitForPort(port: number, timeoutMs = 10_000, what = `port ${port}`): Promise<boolean> {
  return waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect({ port, host: '127.0.0.1' });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    timeoutMs,
    what,
    25,
  );
}

/**
 * Starts a front with the config text given, in the foreground, and waits until it
 * accepts on `port`. nginx gets its pid, temp and log paths inside `dir`.
 */
export async function startFront(name: FrontName, dir: string, config: string, port: number): Promise<Front> {
  let args: string[];
  let file: string;
  if (name === 'nginx') {
    file = join(dir, `nginx-${port}.conf`);
    args = ['-e', 'stderr', '-p', dir, '-c', file, '-g', 'daemon off;'];
  } else if (name === 'caddy') {
    file = join(dir, `Caddyfile-${port}`);
    args = ['run', '--config', file, '--adapter', 'caddyfile'];
  } else {
    file = join(dir, `haproxy-${port}.cfg`);
    args = ['-db', '-f', file];
  }
  writeFileSync(file, config);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_DATA_HOME: dir,
    XDG_CONFIG_HOME: dir,
  };
  const child = spawn(BINARIES[name], args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const front: Front = {
    name,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  try {
    // A front that exits (a config it refuses) fails at once, not at the deadline.
    await Promise.race([
      waitForPort(port, 15_000, `${name} listening on ${port}`),
      exited.then(() => {
        throw new Error(`${name} exited ${child.exitCode}`);
      }),
    ]);
  } catch (err) {
    await front.stop();
    throw new Error(`${(err as Error).message}\n${name} said: ${out}`, { cause: err });
  }
  return front;
}

/** nginx's common frame: one worker, logs and temp files in the scratch dir. */
export function nginxConfig(dir: string, http: string, extra = ''): string {
  // Run as root, nginx's workers run as an unprivileged user: they must reach the temp dirs.
  chmodSync(dir, 0o755);
  for (const d of ['body', 'proxy', 'fcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, d), 0o777);
  }
  return [
    extra,
    'worker_processes 1;',
    `pid ${join(dir, `nginx-${Math.random().toString(36).slice(2)}.pid`)};`,
    'events { worker_connections 512; }',
    'error_log stderr warn;',
    http === ''
      ? ''
      : `http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${http}
}`,
  ].join('\n');
}

/** Caddy's global options: no admin endpoint, no automatic HTTPS, no storage outside `dir`. */
export function caddyGlobals(dir: string): string {
  return `{\n  admin off\n  auto_https off\n  storage file_system ${dir}/caddy\n}\n`;
}

/** HAProxy's common defaults for an HTTP front. */
export const HAPROXY_DEFAULTS = [
  'global',
  '    maxconn 512',
  'defaults',
  '    mode http',
  '    timeout connect 2s',
  '    timeout client 30s',
  '    timeout server 30s',
].join('\n');

export interface Backend {
  server: Server;
  port: number;
  /** Sends SIGTERM and waits for the exit; the exit code. */
  stop(): Promise<number | null>;
}

/** echo-server (the sources, run by this Node) on 127.0.0.1:`port` with `args`; resolves once it listens. */
export async function startBackend(port: number, args: string[] = []): Promise<Backend> {
  const server = spawnMain(['--host', '127.0.0.1', '--port', String(port), '--access-log=false', ...args]);
  try {
    // Its startup line names the listeners (a probe would need the PROXY header under --proxy-protocol).
    await waitFor(
      () => {
        if (server.exited) throw new Error(`echo-server exited: ${server.stderr()}`);
        return server.lines.some((l) => Array.isArray(l.listeners));
      },
      20_000,
      `echo-server listening on ${port}`,
      25,
    );
  } catch (err) {
    server.kill();
    throw err;
  }
  return {
    server,
    port,
    async stop() {
      server.child.kill('SIGTERM');
      return (await server.exit).code;
    },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * The address test clients connect from: not the fronts' own 127.0.0.1, so a
 * backend that trusts only the front can tell the two apart.
 */
export const CLIENT_ADDRESS = '127.0.0.2';

/** A self-signed certificate and key for `name` (openssl), as PEM files in `dir`, and both concatenated (HAProxy's `crt`). */
export function selfSigned(dir: string, name: string): { cert: string; key: string; both: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const both = join(dir, `${name}.pem`);
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'pipe' },
  );
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr.toString()}`);
  writeFileSync(both, Buffer.concat([readFileSync(cert), readFileSync(key)]));
  return { cert, key, both };
}

/** One HTTP/1.1 request through `agent` (keep-alive by default), with a time bound. */
export function send(
  url: string,
  opts: {
    method?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    agent?: Agent;
    timeoutMs?: number;
    localAddress?: string;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent,
        timeout: opts.timeoutMs ?? 10_000,
        localAddress: opts.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface LoadResult {
  sent: number;
  failed: number;
  /** The first few failures, as status lines or error messages. */
  failures: string[];
}

/**
 * A bounded POST load: `concurrency` clients, each sending one POST after another on
 * keep-alive connections, until `done()` holds (checked between requests) or
 * `maxMs` passes. Anything but a 200 echoing the body is a failure. `live` is
 * updated as answers come (to count failures per phase), `finished` resolves at the end.
 */
export function postLoad(
  url: string,
  done: () => boolean,
  opts: { concurrency?: number; maxMs?: number; pauseMs?: number } = {},
): { live: LoadResult; finished: Promise<LoadResult> } {
  const { concurrency = 4, maxMs = 60_000, pauseMs = 5 } = opts;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + maxMs;
  const result: LoadResult = { sent: 0, failed: 0, failures: [] };
  const fail = (what: string) => {
    result.failed++;
    if (result.failures.length < 5) result.failures.push(what);
  };
  const client = async (n: number) => {
    for (let i = 0; !done() && Date.now() < deadline; i++) {
      const body = `load-${n}-${i}`;
      result.sent++;
      try {
        const a = await send(url, {
          method: 'POST',
          body,
          agent,
          headers: { 'content-type': 'text/plain', accept: 'text/plain' },
        });
        if (a.status !== 200 || !a.body.includes(body)) fail(`${a.status} ${a.body.slice(0, 80)}`);
      } catch (err) {
        fail((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const finished = Promise.all(Array.from({ length: concurrency }, (_, n) => client(n))).then(() => {
    agent.destroy();
    return result;
  });
  return { live: result, finished };
}
