// The library entry point: build a server from a Config and injected side effects.
import { createApp, type App } from './adapters/http1/app.ts';
import { createL4 } from './adapters/l4/l4.ts';
import type { Config, Env } from './config/settings.ts';
import { readIdentity, type Identity } from './echo/identity.ts';
import { listen, type Listener } from './transport/listener.ts';
import { createLogger, droppedLogLines, type Logger } from './ops/logger.ts';
import { createMetrics, type Metrics } from './ops/metrics.ts';
import { serveMetrics, type MetricsListener } from './adapters/http1/metrics-server.ts';
import { readCgroupLimits, sizeFor } from './config/resources.ts';
import { loadTlsMaterial } from './transport/tls.ts';

export interface ServerDeps {
  logger?: Logger;
  random?: () => number;
  identity?: Identity;
  env?: Env;
  /** A --workers worker: its number (shown in the echo) and how it joins the primary. */
  worker?: {
    id: number;
    reusePort: boolean;
    /** Called with the metrics before any request can arrive (a worker's /metrics asks the primary). */
    attachMetrics(metrics: Metrics | null): void;
  };
}

export interface EchoServer {
  app: App;
  listener: Listener;
  logger: Logger;
  url: string;
  /** The configuration in effect: `auto` settings resolved. */
  config: Config;
  /** The separate metrics listener (--metrics-port), when there is one. */
  metricsListener: MetricsListener | null;
  /** Where the HTTPS certificate came from, when HTTPS is on. */
  tlsSource: string | null;
  /** Graceful stop: readiness fails, serving goes on for --shutdown-delay, then no new connections and in-flight requests drain. */
  shutdown(): Promise<boolean>;
}

/** `auto` settings a server resolves itself when the caller did not (a library user, the tests). */
export function resolveAuto(config: Config): Config {
  if (config.maxInFlight !== 0 && config.maxConnections !== 0 && config.h2MaxStreams !== 0) return config;
  const sizing = sizeFor(readCgroupLimits(), 1, config.maxConnections);
  return {
    ...config,
    maxInFlight: config.maxInFlight || sizing.maxInFlight,
    maxConnections: config.maxConnections || sizing.maxConnections,
    h2MaxStreams: config.h2MaxStreams || sizing.h2MaxStreams,
  };
}

export async function startServer(given: Config, deps: ServerDeps = {}): Promise<EchoServer> {
  const config = resolveAuto(given);
  const logger = deps.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const metrics = config.metrics ? createMetrics({ droppedLogLines: () => droppedLogLines(logger) }) : null;
  deps.worker?.attachMetrics(metrics);
  let identity = config.identity ? (deps.identity ?? readIdentity()) : null;
  if (identity !== null && deps.worker !== undefined) identity = { ...identity, worker: deps.worker.id };
  const app = createApp(config, {
    logger,
    metrics,
    random: deps.random ?? Math.random,
    identity,
    env: deps.env ?? {},
  });
  const tls = config.https || config.tcpTlsPort !== null ? await loadTlsMaterial(config) : null;
  const l4 =
    config.tcpPort !== null || config.tcpTlsPort !== null || config.udpPort !== null
      ? createL4(config, { logger, metrics, identity })
      : undefined;
  const listener = await listen(app, config, {
    logger,
    metrics,
    tls,
    reusePort: deps.worker?.reusePort ?? false,
    ...(l4 === undefined ? {} : { l4 }),
  });
  // A worker leaves --metrics-port to the primary, which serves every worker's figures there.
  const metricsListener =
    metrics !== null && config.metricsPort !== 0 && config.metricsPath !== '' && deps.worker === undefined
      ? await serveMetrics(config, () => metrics.scrape(), metrics.contentType, logger).catch(async (err: unknown) => {
          await listener.shutdown(0);
          throw err;
        })
      : null;
  app.boundPorts([...listener.ports.map((p) => p.address.port), ...(metricsListener ? [metricsListener.port] : [])]);
  let stopping: Promise<boolean> | undefined;
  return {
    app,
    listener,
    logger,
    config,
    metricsListener,
    url: listener.url,
    tlsSource: tls?.source ?? null,
    shutdown() {
      return (stopping ??= stop());
    },
  };

  /**
   * Readiness fails at once (and HTTP/1.1 answers say Connection: close); for
   * --shutdown-delay the server keeps accepting and serving, so a load balancer has
   * time to notice and deregister it; then it stops accepting and drains.
   */
  async function stop(): Promise<boolean> {
    app.health.beginDrain();
    if (config.shutdownDelayMs > 0) {
      logger.info({ shutdownDelayMs: config.shutdownDelayMs }, 'shutdown delay: still serving, readiness failed');
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
    }
    app.beginShutdown();
    const drained = await listener.shutdown(config.drainTimeoutMs);
    await metricsListener?.close(); // metrics stay scrapeable while requests drain
    return drained;
  }
}
