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
// Connections reach workers in one of two ways (--worker-balance):
//   primary   node:cluster's default on Linux: the primary accepts and hands each
//             connection to the next worker in turn;
//   reuseport every worker binds its own socket with SO_REUSEPORT and the kernel
//             spreads connections by a hash of their addresses.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/settings.ts';
import type { Logger } from './ops/logger.ts';
import { renderMetrics, type Metrics, type MetricsSnapshot } from './ops/metrics.ts';
import { serveMetrics, type MetricsListener } from './http/metrics-listener.ts';
import { sizeFor, type CgroupLimits } from './config/resources.ts';

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
  | { echo: 'scraped'; id: number; text: string | null }
  | { echo: 'drain' };
type ToPrimary =
  | { echo: 'listening'; urls: string[] }
  | { echo: 'snapshot'; id: number; snapshot: MetricsSnapshot }
  | { echo: 'scrape'; id: number };

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

/** How long a scrape waits for the workers' counters. */
const SCRAPE_WAIT_MS = 2000;
/** Beyond --drain-timeout, how long the primary waits for workers to exit before killing them. */
const EXIT_GRACE_MS = 5000;

export async function runPrimary(config: Config, workers: number, limits: CgroupLimits, io: PrimaryIo): Promise<0 | 1 | 2> {
  const { logger } = io;
  const sizing = sizeFor(limits, workers, config.maxConnections);
  const heapArgs = sizing.heapMiB !== null && !io.nodeArgs.some((a) => a.startsWith('--max-old-space-size')) ? [`--max-old-space-size=${sizing.heapMiB}`] : [];
  cluster.setupPrimary({ args: [...io.argv], execArgv: [...io.nodeArgs, ...heapArgs] });
  const balance = config.workerBalance;
  let ports: string | undefined;
  if (balance === 'reuseport') {
    // Every worker binds by itself, so a port of 0 must become one real port first.
    const http = config.port === 0 ? await freePort(config.host) : config.port;
    const https = config.https && config.httpsPort === 0 ? await freePort(config.host) : config.httpsPort;
    ports = `${http},${https}`;
  }

  const live = new Map<number, Worker>(); // by slot
  const ready = new Set<number>();
  let restarts = 0;
  let stopping = false;
  /** The exit status once every worker is gone: 0 after a drain, else why they stopped. */
  let failure: 0 | 1 | 2 = 0;
  let started = false;
  let urls: string[] = [];
  let resolveExit!: (code: 0 | 1 | 2) => void;
  const exited = new Promise<0 | 1 | 2>((r) => { resolveExit = r; });
  const pending = new Map<number, { want: number; got: MetricsSnapshot[]; done: (s: MetricsSnapshot[]) => void }>();
  let nextId = 1;

  /** Every ready worker's counters, added up (a worker that does not answer in time is left out). */
  const collect = (): Promise<string> => new Promise((resolve) => {
    const id = nextId++;
    const targets = [...ready].map((slot) => live.get(slot)).filter((w): w is Worker => w !== undefined && w.isConnected());
    const finish = (got: MetricsSnapshot[]) => {
      clearTimeout(timer);
      pending.delete(id);
      renderMetrics(got, { workers: live.size, restarts }).then(resolve, (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'metrics aggregation failed');
        resolve('');
      });
    };
    const timer = setTimeout(() => finish(pending.get(id)?.got ?? []), SCRAPE_WAIT_MS);
    pending.set(id, { want: targets.length, got: [], done: finish });
    if (targets.length === 0) finish([]);
    for (const w of targets) w.send({ echo: 'snapshot', id } satisfies ToWorker);
  });

  const fork = (slot: number) => {
    const env: Record<string, string> = { [WORKER_ENV.id]: String(slot) };
    if (config.maxInFlight === 0) env[WORKER_ENV.maxInFlight] = String(sizing.maxInFlight);
    if (config.maxConnections === 0) env[WORKER_ENV.maxConnections] = String(sizing.maxConnections);
    if (config.h2MaxStreams === 0) env[WORKER_ENV.h2MaxStreams] = String(sizing.h2MaxStreams);
    if (ports !== undefined) env[WORKER_ENV.ports] = ports;
    const w = cluster.fork(env);
    live.set(slot, w);
    w.on('message', (m: ToPrimary) => {
      if (m.echo === 'listening') {
        ready.add(slot);
        urls = m.urls;
        if (!started && ready.size === workers) {
          started = true;
          logger.info({ listeners: urls, workers, workerBalance: balance, config: io.describe }, 'echo-server started');
          io.onListening?.(urls[0]!);
        } else if (started) {
          logger.info({ worker: slot, pid: w.process.pid }, 'worker replaced');
        }
      } else if (m.echo === 'snapshot') {
        const p = pending.get(m.id);
        if (p !== undefined) {
          p.got.push(m.snapshot);
          if (p.got.length >= p.want) p.done(p.got);
        }
      } else if (m.echo === 'scrape') {
        void collect().then((text) => { if (w.isConnected()) w.send({ echo: 'scraped', id: m.id, text } satisfies ToWorker); });
      }
    });
    w.on('exit', (code, signal) => {
      if (live.get(slot) === w) live.delete(slot);
      const wasReady = ready.delete(slot);
      if (stopping) {
        if (live.size === 0) resolveExit(failure);
        return;
      }
      if (!started && !wasReady) {
        // A worker that cannot even start (a busy port, a bad certificate) will not
        // do better the next time: stop everything with its status.
        logger.fatal({ worker: slot, code, signal }, 'worker failed to start');
        stopping = true;
        failure = code === 2 ? 2 : 1;
        for (const other of live.values()) other.kill('SIGKILL');
        if (live.size === 0) resolveExit(failure);
        return;
      }
      restarts++;
      logger.error({ worker: slot, pid: w.process.pid, code, signal, restarts }, 'worker died: starting a replacement');
      fork(slot);
    });
  };

  let metricsListener: MetricsListener | null = null;
  if (config.metrics && config.metricsPort !== 0 && config.metricsPath !== '') {
    metricsListener = await serveMetrics(config, collect, 'text/plain; version=0.0.4; charset=utf-8', logger);
  }
  for (let slot = 1; slot <= workers; slot++) fork(slot);

  let signals = 0;
  io.onSignal((signal) => {
    if (signal === 'SIGUSR1' || signal === 'SIGUSR2') {
      logger.warn({ signal }, 'signal ignored (SIGTERM, SIGINT, SIGHUP or SIGQUIT stop the server)');
      return;
    }
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      stopping = true;
      failure = 1;
      for (const w of live.values()) w.kill('SIGKILL');
      void io.flush().then(() => resolveExit(1));
      return;
    }
    stopping = true;
    logger.info({ signal, workers: live.size, drainTimeoutMs: config.drainTimeoutMs }, 'shutting down: draining every worker');
    for (const w of live.values()) if (w.isConnected()) w.send({ echo: 'drain' } satisfies ToWorker);
    if (live.size === 0) resolveExit(0);
    setTimeout(() => {
      for (const w of live.values()) w.kill('SIGKILL');
    }, config.drainTimeoutMs + EXIT_GRACE_MS).unref();
  });

  const code = await exited;
  await metricsListener?.close();
  if (code === 0) logger.info('shutdown complete');
  await io.flush();
  return code;
}

/** Worker side: answers the primary's requests for counters, asks it for the whole scrape, drains on its word. */
export function joinPrimary(metrics: Metrics | null, drain: () => void): { listening(urls: string[]): void } {
  const waiting = new Map<number, (text: string | null) => void>();
  let next = 1;
  process.on('message', (m: ToWorker) => {
    if (m.echo === 'snapshot' && metrics !== null) {
      void metrics.snapshot().then((snapshot) => process.send?.({ echo: 'snapshot', id: m.id, snapshot } satisfies ToPrimary));
    } else if (m.echo === 'scraped') {
      waiting.get(m.id)?.(m.text);
      waiting.delete(m.id);
    } else if (m.echo === 'drain') {
      drain();
    }
  });
  // The primary is gone (killed, crashed): nobody will replace or stop this worker, so it drains.
  process.on('disconnect', drain);
  if (metrics !== null) {
    metrics.scrape = () => new Promise((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => { waiting.delete(id); reject(new Error('the primary did not answer')); }, SCRAPE_WAIT_MS * 2);
      waiting.set(id, (text) => {
        clearTimeout(timer);
        if (text === null) reject(new Error('metrics collection failed'));
        else resolve(text);
      });
      if (process.send?.({ echo: 'scrape', id } satisfies ToPrimary) !== true) {
        clearTimeout(timer);
        waiting.delete(id);
        reject(new Error('no channel to the primary'));
      }
    });
  }
  return {
    listening(urls) {
      process.send?.({ echo: 'listening', urls } satisfies ToPrimary);
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
