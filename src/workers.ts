// --workers N: a primary process and N workers sharing the listening ports.
//
// The primary serves nothing itself. It starts the workers (node:cluster), logs
// "echo-server started" once every one listens, replaces a worker that dies (and
// logs it), answers /metrics for all of them (it asks each worker for its counters
// over the IPC channel and adds them up), serves --metrics-port when set, and on a
// stop signal tells every worker to drain exactly as a single process would:
// readiness fails, listeners close, requests in flight finish within
// --drain-timeout; it exits once they all have.
//
// The IPC channel also carries every connection the primary hands out, so what
// else crosses it is bounded: one metrics collection at a time, shared by every
// scrape that arrives meanwhile and reused for about a second, and at most one
// request for counters outstanding per worker. A message `send()` could not write
// yet is queued by Node, not lost: it is never sent twice.
//
// Workers are watched: one that stops answering the primary's heartbeat (frozen,
// stopped, spinning) is killed and replaced, and one that keeps dying is restarted
// after a growing pause rather than in a tight loop.
//
// Connections reach workers in one of two ways (--worker-balance):
//   primary   node:cluster's default on Linux: the primary accepts and hands each
//             connection to the next worker in turn;
//   reuseport every worker binds its own socket with SO_REUSEPORT and the kernel
//             spreads connections by a hash of their addresses.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/settings.ts';
import type { Logger } from './ops/logger.ts';
import { limitedLog, type LimitedLog } from './ops/log-limit.ts';
import { renderMetrics, type Metrics, type MetricsSnapshot } from './ops/metrics.ts';
import { serveMetrics, type MetricsListener } from './adapters/http1/metrics-server.ts';
import { sizeFor, type CgroupLimits, type Sizing } from './config/resources.ts';

/** Environment the primary hands a worker. */
export const WORKER_ENV = {
  id: 'ECHO_WORKER_ID',
  maxInFlight: 'ECHO_WORKER_MAX_IN_FLIGHT',
  maxConnections: 'ECHO_WORKER_MAX_CONNECTIONS',
  h2MaxStreams: 'ECHO_WORKER_H2_MAX_STREAMS',
  ports: 'ECHO_WORKER_PORTS',
} as const;

type ToWorker =
  | { echo: 'snapshot'; id: number }
  | { echo: 'scraped'; id: number; text: string | null; freshForMs: number }
  | { echo: 'ping' }
  | { echo: 'drain' };
type ToPrimary =
  | { echo: 'listening'; urls: string[] }
  | { echo: 'snapshot'; id: number; snapshot: MetricsSnapshot }
  | { echo: 'scrape'; id: number }
  | { echo: 'pong' };

/** This process's worker number (1..N), or null when it is not a --workers worker. */
export function workerId(env: NodeJS.ProcessEnv = process.env): number | null {
  const id = env[WORKER_ENV.id];
  return cluster.isWorker && id !== undefined ? Number(id) : null;
}

export interface PrimaryIo {
  argv: readonly string[];
  logger: Logger;
  describe: Record<string, unknown>;
  onListening?(url: string): void;
  onSignal(handler: (signal: string) => void): void;
  flush(): Promise<void>;
  nodeArgs: string[];
}

/** How long a collection waits for the workers' counters (a worker that has not answered by then is left out). */
const SCRAPE_WAIT_MS = 2000;
/** How long one collection answers every scrape: Prometheus scrapes every 15 s or so, a flood gets the same text. */
const METRICS_FRESH_MS = 1000;
/** Beyond --drain-timeout, how long the primary waits for workers to exit before killing them. */
const EXIT_GRACE_MS = 5000;
/** How often the primary asks each worker for a sign of life. */
const HEARTBEAT_MS = 1000;
/**
 * A worker silent this long is replaced. A busy worker still answers between
 * requests within milliseconds; ten seconds of silence is a frozen event loop or
 * a stopped process, whose share of connections would otherwise hang.
 */
const UNRESPONSIVE_MS = 10_000;
/** The first pause before restarting a worker that died soon after its last start; it doubles up to the cap. */
const RESTART_BACKOFF_MS = 250;
const RESTART_BACKOFF_CAP_MS = 15_000;
/** A worker that served this long before dying is restarted at once, its slot's backoff forgotten. */
const STABLE_MS = 10_000;

/**
 * `send()` on an IPC channel: false from it means the message is queued until the
 * channel drains, not that it failed. Resolves true once written, false if it
 * cannot be (the channel is closed); never sends twice.
 */
function sendTo(target: Pick<Worker, 'send'> | NodeJS.Process, message: ToWorker | ToPrimary): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const queued = (target.send as ((m: unknown, cb: (err: Error | null) => void) => boolean) | undefined)?.call(
        target,
        message,
        (err) => resolve(err == null),
      );
      if (queued === undefined) resolve(false); // no channel at all
    } catch {
      resolve(false); // the channel is already closed
    }
  });
}

/** An error for a failed scrape: it says why in one line, with no stack trace to repeat per scrape. */
function scrapeError(message: string): Error {
  const err = new Error(message);
  err.stack = `Error: ${message}`;
  return err;
}

interface Slot {
  worker: Worker | null;
  /** When the current worker was forked, and when it last said anything. */
  forkedAt: number;
  lastSeen: number;
  /** Restarts since the slot last had a worker that lived STABLE_MS. */
  failures: number;
  restartTimer: NodeJS.Timeout | null;
  /** A request for counters this worker has not answered yet: no second one until it does. */
  awaitingSnapshot: boolean;
  pingQueued: boolean;
  /** Killed by the watchdog: its "worker died" line says so. */
  unresponsive: boolean;
}

export async function runPrimary(
  config: Config,
  workers: number,
  limits: CgroupLimits,
  io: PrimaryIo,
): Promise<0 | 1 | 2> {
  const sizing = sizeFor(limits, workers, config.maxConnections);
  const heapArgs =
    sizing.heapMiB !== null && !io.nodeArgs.some((a) => a.startsWith('--max-old-space-size'))
      ? [`--max-old-space-size=${sizing.heapMiB}`]
      : [];
  cluster.setupPrimary({ args: [...io.argv], execArgv: [...io.nodeArgs, ...heapArgs] });
  let ports: string | undefined;
  if (config.workerBalance === 'reuseport') {
    // Every worker binds by itself, so a port of 0 must become one real port first.
    const http = config.port === 0 ? await freePort(config.host) : config.port;
    const https = config.https && config.httpsPort === 0 ? await freePort(config.host) : config.httpsPort;
    ports = `${http},${https}`;
  }
  const primary = new Primary(config, workers, sizing, ports, io);
  const heartbeat = setInterval(() => primary.watch(), HEARTBEAT_MS);
  heartbeat.unref();
  let metricsListener: MetricsListener | null = null;
  if (config.metrics && config.metricsPort !== 0 && config.metricsPath !== '') {
    metricsListener = await serveMetrics(
      config,
      () => primary.figures.collect().then(({ text }) => text),
      'text/plain; version=0.0.4; charset=utf-8',
      io.logger,
    );
  }
  primary.start();
  io.onSignal((signal) => primary.signal(signal));
  const code = await primary.exited;
  clearInterval(heartbeat);
  primary.cancelRestarts();
  await metricsListener?.close();
  if (code === 0) io.logger.info('shutdown complete');
  await io.flush();
  return code;
}

/**
 * The workers' figures for /metrics: every ready worker's counters, added up (a
 * worker that does not answer in time is left out). One collection at a time;
 * every scrape meanwhile, and for METRICS_FRESH_MS after, gets its text.
 */
class FigureCollector {
  readonly #primary: Primary;
  readonly #pending = new Map<number, { want: number; got: MetricsSnapshot[]; done: (s: MetricsSnapshot[]) => void }>();
  #nextId = 1;
  #collecting: Promise<string> | null = null;
  #collected: { text: string; at: number } | null = null;

  constructor(primary: Primary) {
    this.#primary = primary;
  }

  collect(): Promise<{ text: string; freshForMs: number }> {
    const now = performance.now();
    const collected = this.#collected;
    if (collected !== null && now - collected.at < METRICS_FRESH_MS) {
      return Promise.resolve({ text: collected.text, freshForMs: METRICS_FRESH_MS - (now - collected.at) });
    }
    this.#collecting ??= this.#gather().finally(() => {
      this.#collecting = null;
    });
    return this.#collecting.then((text) => ({ text, freshForMs: METRICS_FRESH_MS }));
  }

  /** A worker's counters arrived for collection `id`. */
  received(id: number, snapshot: MetricsSnapshot): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    p.got.push(snapshot);
    if (p.got.length >= p.want) p.done(p.got);
  }

  #gather(): Promise<string> {
    const primary = this.#primary;
    return new Promise<string>((resolve, reject) => {
      const id = this.#nextId++;
      const targets: { state: Slot; w: Worker }[] = [];
      let skipped = 0;
      for (const slot of primary.ready) {
        const state = primary.slots.get(slot);
        const w = primary.live.get(slot);
        if (state === undefined || w === undefined || !w.isConnected()) continue;
        if (state.awaitingSnapshot)
          skipped++; // still owes the last answer: asking again would only queue more
        else targets.push({ state, w });
      }
      const finish = (got: MetricsSnapshot[]) => {
        clearTimeout(timer);
        if (!this.#pending.delete(id)) return;
        const missing = targets.length + skipped - got.length;
        if (missing > 0)
          primary.limited(
            'warn',
            { workers: missing, waitedMs: SCRAPE_WAIT_MS },
            'metrics: workers did not answer in time; their figures are left out',
          );
        renderMetrics(got, { workers: primary.live.size, restarts: primary.restarts }).then(
          (text) => {
            this.#collected = { text, at: performance.now() };
            resolve(text);
          },
          (err: unknown) => {
            primary.limited('error', { err: (err as Error).message }, 'metrics aggregation failed');
            reject(scrapeError(`metrics aggregation failed: ${(err as Error).message}`));
          },
        );
      };
      const timer = setTimeout(() => finish(this.#pending.get(id)?.got ?? []), SCRAPE_WAIT_MS);
      this.#pending.set(id, { want: targets.length, got: [], done: finish });
      if (targets.length === 0) finish([]);
      for (const { state, w } of targets) {
        state.awaitingSnapshot = true;
        void sendTo(w, { echo: 'snapshot', id }).then((sent) => {
          if (!sent && state.worker === w) state.awaitingSnapshot = false;
        });
      }
    });
  }
}

/** The primary's state: its worker slots, who is ready, restarts, and how it stops. */
class Primary {
  readonly slots = new Map<number, Slot>();
  readonly live = new Map<number, Worker>(); // by slot
  readonly ready = new Set<number>();
  readonly figures: FigureCollector;
  readonly limited: LimitedLog;
  readonly exited: Promise<0 | 1 | 2>;
  restarts = 0;
  readonly #config: Config;
  readonly #workers: number;
  readonly #sizing: Sizing;
  readonly #ports: string | undefined;
  readonly #io: PrimaryIo;
  #stopping = false;
  /** The exit status once every worker is gone: 0 after a drain, else why they stopped. */
  #failure: 0 | 1 | 2 = 0;
  #started = false;
  #signals = 0;
  #resolveExit!: (code: 0 | 1 | 2) => void;

  constructor(config: Config, workers: number, sizing: Sizing, ports: string | undefined, io: PrimaryIo) {
    this.#config = config;
    this.#workers = workers;
    this.#sizing = sizing;
    this.#ports = ports;
    this.#io = io;
    this.limited = limitedLog(io.logger);
    this.figures = new FigureCollector(this);
    this.exited = new Promise<0 | 1 | 2>((r) => {
      this.#resolveExit = r;
    });
  }

  start(): void {
    for (let slot = 1; slot <= this.#workers; slot++) {
      this.slots.set(slot, {
        worker: null,
        forkedAt: 0,
        lastSeen: 0,
        failures: 0,
        restartTimer: null,
        awaitingSnapshot: false,
        pingQueued: false,
        unresponsive: false,
      });
      this.#fork(slot);
    }
  }

  #fork(slot: number): void {
    const config = this.#config;
    const state = this.slots.get(slot)!;
    state.restartTimer = null;
    const env: Record<string, string> = { [WORKER_ENV.id]: String(slot) };
    if (config.maxInFlight === 0) env[WORKER_ENV.maxInFlight] = String(this.#sizing.maxInFlight);
    if (config.maxConnections === 0) env[WORKER_ENV.maxConnections] = String(this.#sizing.maxConnections);
    if (config.h2MaxStreams === 0) env[WORKER_ENV.h2MaxStreams] = String(this.#sizing.h2MaxStreams);
    if (this.#ports !== undefined) env[WORKER_ENV.ports] = this.#ports;
    const w = cluster.fork(env);
    this.live.set(slot, w);
    Object.assign(state, {
      worker: w,
      forkedAt: performance.now(),
      lastSeen: performance.now(),
      awaitingSnapshot: false,
      pingQueued: false,
      unresponsive: false,
    });
    w.on('message', (m: ToPrimary) => this.#message(slot, state, w, m));
    w.on('exit', (code, signal) => this.#exit(slot, state, w, code, signal));
  }

  #message(slot: number, state: Slot, w: Worker, m: ToPrimary): void {
    const { logger } = this.#io;
    if (state.worker === w) state.lastSeen = performance.now();
    if (m.echo === 'listening') {
      this.ready.add(slot);
      if (!this.#started && this.ready.size === this.#workers) {
        this.#started = true;
        logger.info(
          {
            listeners: m.urls,
            workers: this.#workers,
            workerBalance: this.#config.workerBalance,
            config: this.#io.describe,
          },
          'echo-server started',
        );
        this.#io.onListening?.(m.urls[0]!);
      } else if (this.#started) {
        logger.info({ worker: slot, pid: w.process.pid }, 'worker replaced');
      }
    } else if (m.echo === 'snapshot') {
      if (state.worker === w) state.awaitingSnapshot = false;
      this.figures.received(m.id, m.snapshot);
    } else if (m.echo === 'scrape') {
      // The worker asks again only once this is answered (joinPrimary), so replies cannot pile up.
      void this.figures.collect().then(
        ({ text, freshForMs }) => sendTo(w, { echo: 'scraped', id: m.id, text, freshForMs }),
        () => sendTo(w, { echo: 'scraped', id: m.id, text: null, freshForMs: 0 }),
      );
    }
  }

  #exit(slot: number, state: Slot, w: Worker, code: number, signal: string): void {
    const { logger } = this.#io;
    if (this.live.get(slot) === w) this.live.delete(slot);
    if (state.worker === w) state.worker = null;
    const wasReady = this.ready.delete(slot);
    if (this.#stopping) {
      if (this.live.size === 0) this.#resolveExit(this.#failure);
      return;
    }
    if (!this.#started && !wasReady) {
      // A worker that cannot even start (a busy port, a bad certificate) will not
      // do better the next time: stop everything with its status.
      logger.fatal({ worker: slot, code, signal }, 'worker failed to start');
      this.#stopping = true;
      this.#failure = code === 2 ? 2 : 1;
      for (const other of this.live.values()) other.process.kill('SIGKILL');
      this.cancelRestarts();
      if (this.live.size === 0) this.#resolveExit(this.#failure);
      return;
    }
    // Later on, the cause may pass (a certificate being replaced, memory freed), so
    // the slot is restarted, but a worker that keeps dying waits longer each time.
    if (wasReady && performance.now() - state.forkedAt >= STABLE_MS) state.failures = 0;
    const delay =
      state.failures === 0 ? 0 : Math.min(RESTART_BACKOFF_MS * 2 ** (state.failures - 1), RESTART_BACKOFF_CAP_MS);
    state.failures++;
    this.restarts++;
    logger.error(
      {
        worker: slot,
        pid: w.process.pid,
        code,
        signal,
        restarts: this.restarts,
        restartInMs: delay,
        ...(state.unresponsive ? { unresponsive: true } : {}),
      },
      'worker died: starting a replacement',
    );
    if (delay === 0) this.#fork(slot);
    else
      state.restartTimer = setTimeout(() => {
        if (!this.#stopping) this.#fork(slot);
      }, delay);
  }

  /**
   * The watchdog, every HEARTBEAT_MS: every ready worker is asked for a sign of
   * life; one that has said nothing for UNRESPONSIVE_MS is killed, and its exit
   * starts a replacement.
   */
  watch(): void {
    if (this.#stopping) return;
    const now = performance.now();
    for (const [slot, state] of this.slots) {
      const w = state.worker;
      if (w === null || !this.ready.has(slot) || state.unresponsive) continue;
      const silentMs = Math.round(now - state.lastSeen);
      if (silentMs > UNRESPONSIVE_MS) {
        state.unresponsive = true;
        this.#io.logger.error({ worker: slot, pid: w.process.pid, silentMs }, 'worker stopped answering: killing it');
        w.process.kill('SIGKILL'); // not w.kill(): that waits for a disconnect a frozen worker never makes
      } else if (!state.pingQueued && w.isConnected()) {
        state.pingQueued = true;
        void sendTo(w, { echo: 'ping' }).then(() => {
          if (state.worker === w) state.pingQueued = false;
        });
      }
    }
  }

  cancelRestarts(): void {
    for (const s of this.slots.values()) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer);
      s.restartTimer = null;
    }
  }

  /** A stop signal: every worker drains; a second one kills them all at once. */
  signal(signal: string): void {
    const { logger } = this.#io;
    if (signal === 'SIGUSR1' || signal === 'SIGUSR2') {
      logger.warn({ signal }, 'signal ignored (SIGTERM, SIGINT, SIGHUP or SIGQUIT stop the server)');
      return;
    }
    this.#signals++;
    this.cancelRestarts();
    this.#stopping = true;
    if (this.#signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      this.#failure = 1;
      for (const w of this.live.values()) w.process.kill('SIGKILL');
      void this.#io.flush().then(() => this.#resolveExit(1));
      return;
    }
    logger.info(
      { signal, workers: this.live.size, drainTimeoutMs: this.#config.drainTimeoutMs },
      'shutting down: draining every worker',
    );
    for (const w of this.live.values()) if (w.isConnected()) void sendTo(w, { echo: 'drain' });
    if (this.live.size === 0) this.#resolveExit(0);
    setTimeout(() => {
      for (const w of this.live.values()) w.process.kill('SIGKILL');
    }, this.#config.drainTimeoutMs + EXIT_GRACE_MS).unref();
  }
}

/**
 * Worker side: answers the primary's heartbeat and requests for counters, asks it
 * for the whole scrape, drains on its word. Scrapes share one question to the
 * primary at a time, and its answer while the primary says it is fresh.
 */
export function joinPrimary(
  metrics: Metrics | null,
  drain: () => void,
  logger: Logger,
): { listening(urls: string[]): void } {
  const limited = limitedLog(logger);
  const waiting = new Map<number, (text: string | null, freshForMs: number) => void>();
  let next = 1;
  process.on('message', (m: ToWorker) => {
    if (m.echo === 'ping') {
      void sendTo(process, { echo: 'pong' });
    } else if (m.echo === 'snapshot' && metrics !== null) {
      void metrics.snapshot().then((snapshot) => sendTo(process, { echo: 'snapshot', id: m.id, snapshot }));
    } else if (m.echo === 'scraped') {
      waiting.get(m.id)?.(m.text, m.freshForMs);
      waiting.delete(m.id);
    } else if (m.echo === 'drain') {
      drain();
    }
  });
  // The primary is gone (killed, crashed): nobody will replace or stop this worker, so it drains.
  process.on('disconnect', drain);
  if (metrics !== null) {
    let asking: Promise<string> | null = null;
    let fresh: { text: string; until: number } | null = null;
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        let settled = false;
        const fail = (why: string) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          waiting.delete(id);
          limited('error', { err: why }, 'metrics collection failed');
          reject(scrapeError(`metrics collection failed: ${why}`));
        };
        const timer = setTimeout(() => fail('the primary did not answer in time'), SCRAPE_WAIT_MS * 2);
        waiting.set(id, (text, freshForMs) => {
          if (text === null || settled) {
            fail('the primary could not collect the figures');
            return;
          }
          settled = true;
          clearTimeout(timer);
          fresh = { text, until: performance.now() + freshForMs };
          resolve(text);
        });
        void sendTo(process, { echo: 'scrape', id }).then((sent) => {
          if (!sent) fail('no channel to the primary');
        });
      });
    metrics.scrape = () => {
      if (fresh !== null && performance.now() < fresh.until) return Promise.resolve(fresh.text);
      asking ??= ask().finally(() => {
        asking = null;
      });
      return asking;
    };
  }
  return {
    listening(urls) {
      void sendTo(process, { echo: 'listening', urls });
    },
  };
}

async function freePort(host: string): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: host === '::' ? '::' : host, ipv6Only: false }, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
