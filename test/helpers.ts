// Test helpers: a real server on an ephemeral loopback port, real clients.
import { spawn, spawnSync } from 'node:child_process';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { defaultConfig, type Config } from '../src/config/settings.ts';
import { createLogger } from '../src/ops/logger.ts';
import { startServer, type EchoServer, type ServerDeps } from '../src/server.ts';

/** Collects log lines as parsed objects. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  /** The same lines as written, before parsing. */
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  messages(msg: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === msg);
  }
}

export interface TestServer {
  server: EchoServer;
  url: string;
  port: number;
  logs: LogCapture;
  close(): Promise<void>;
}

export async function startTestServer(overrides: Partial<Config> = {}, deps: ServerDeps = {}): Promise<TestServer> {
  // No idle grace on a drain unless a test asks: the suite's own clients keep idle
  // keep-alive connections, and each stop would wait out the grace (1 s) for them.
  const config = defaultConfig({ port: 0, host: '127.0.0.1', drainIdleGraceMs: 0, ...overrides });
  const logs = new LogCapture();
  const logger = createLogger({ level: 'info', format: 'json', destination: logs });
  const server = await startServer(config, {
    logger,
    identity: { hostname: 'test-host', addresses: ['192.0.2.10'] },
    ...deps,
  });
  return {
    server,
    url: server.url,
    port: server.listener.address.port,
    logs,
    close: async () => {
      await server.shutdown();
    },
  };
}

export interface RawOptions {
  /** Upper bound on the whole exchange (default 2000 ms). */
  timeoutMs?: number;
  /** Resolve as soon as what was received satisfies this, instead of waiting for the server to close. */
  until?: (received: string) => boolean;
}

/**
 * Sends raw bytes over TCP and returns everything received until the server closes,
 * `until` holds, or the time bound passes (a number as the third argument is that bound).
 */
export function rawRequest(
  port: number,
  payload: string | Buffer,
  options: number | RawOptions = 2000,
  host = '127.0.0.1',
): Promise<string> {
  const { timeoutMs = 2000, until } = typeof options === 'number' ? { timeoutMs: options } : options;
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    const chunks: Buffer[] = [];
    const received = () => Buffer.concat(chunks).toString('latin1');
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (until?.(received())) socket.destroy();
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(received());
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received());
    });
    socket.write(payload);
  });
}

/** An HTTP/1.1 response head has arrived in full. */
export const headComplete = (received: string) => received.includes('\r\n\r\n');

/** A whole HTTP/1.1 response with a Content-Length body has arrived. */
export function responseComplete(received: string): boolean {
  const end = received.indexOf('\r\n\r\n');
  const length = /\r\nContent-Length: (\d+)\r\n/i.exec(received.slice(0, end + 2));
  return end >= 0 && length !== null && received.length - end - 4 >= Number(length[1]);
}

/** A random (version 4) UUID in its canonical lower-case form, as the server makes request ids. */
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A fixed pause: only for pacing a client on purpose. To wait for something, use `waitFor`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The one polling wait of the test suite: calls `check` (sync or async) until it
 * gives a truthy value and returns that value, or fails after `timeoutMs` naming
 * `what`. A check that throws counts as "not yet" (a server still starting refuses
 * connections), and its last error is reported if time runs out.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 2000,
  what = 'condition',
  everyMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : ` (last error: ${(lastError as Error).message})`;
      throw new Error(`not within ${timeoutMs} ms: ${what}${why}`, { cause: lastError });
    }
    await sleep(everyMs);
  }
}

/** The requests the server at `url` has in flight, by its own gauge; the scrape that reads it is one of them. */
export async function requestsInFlight(url: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', url), { signal: AbortSignal.timeout(2000) })).text();
  const m = /^echo_http_requests_in_flight (\d+)$/m.exec(text);
  if (m === null) throw new Error('no echo_http_requests_in_flight in /metrics');
  return Number(m[1]);
}

/**
 * Waits until the server at `url` has exactly `n` requests in flight besides the
 * scrape itself: the observable moment to signal it "while a request is in flight".
 */
export async function waitForInFlight(url: string, n: number, timeoutMs = 5000): Promise<void> {
  await waitFor(
    async () => (await requestsInFlight(url)) - 1 === n,
    timeoutMs,
    `${n} request(s) in flight at ${url}`,
    20,
  );
}

/**
 * An external client program (curl, nghttp, h2load, openssl). Missing locally it
 * skips the test with a message; in CI (CI=true) a missing tool is a failure.
 */
export function requireTool(ctx: { skip(msg: string): void }, name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') throw new Error(`${name} is not installed; .ci/run installs it`);
  ctx.skip(`${name} is not installed`);
  return false;
}

/** Runs a program to completion with a time limit; resolves with its exit code and output. */
export function runTool(
  cmd: string,
  args: string[],
  input?: string,
  timeoutMs = 15_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('latin1');
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('latin1');
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a program that never reads its input closes the pipe early
    child.stdin.end(input ?? '');
  });
}

/** One HTTP/2 request on a fresh session (h2c for http:, TLS without verification for https:). */
export function h2request(
  origin: string,
  path: string,
  opts: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(origin, { rejectUnauthorized: false });
    session.on('error', reject);
    const req = session.request({
      ':path': path,
      ':method': opts.method ?? 'GET',
      accept: 'application/json',
      ...opts.headers,
    });
    let status = 0;
    let body = '';
    req.on('response', (hd) => {
      status = Number(hd[':status']);
    });
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * A loopback port free right now, for programs that must be told a port rather than
 * report the one they bound (HAProxy, notary-server, --metrics-port): bind port 0, close.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A plain node:http target on loopback that answers `body` (JSON), records the paths asked and counts its open connections. */
export interface HttpTarget {
  port: number;
  paths: string[];
  open(): number;
  close(): void;
}

export async function httpTarget(body = '{}'): Promise<HttpTarget> {
  const paths: string[] = [];
  let open = 0;
  const server: HttpServer = createHttpServer((req, res) => {
    paths.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(body);
  });
  server.on('connection', (s) => {
    open++;
    s.once('close', () => open--);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    paths,
    open: () => open,
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
}
