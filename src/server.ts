// The library entry point: build a server from a Config and injected side effects.
import { createApp, type App } from './app.ts';
import type { Config, Env } from './config.ts';
import { readIdentity, type Identity } from './identity.ts';
import { listen, type Listener } from './listener.ts';
import { createLogger, droppedLogLines, type Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { loadTlsMaterial } from './tls.ts';

export interface ServerDeps {
  logger?: Logger;
  random?: () => number;
  identity?: Identity;
  env?: Env;
}

export interface EchoServer {
  app: App;
  listener: Listener;
  logger: Logger;
  url: string;
  /** Where the HTTPS certificate came from, when HTTPS is on. */
  tlsSource: string | null;
  /** Graceful stop: readiness fails, serving goes on for --shutdown-delay, then no new connections and in-flight requests drain. */
  shutdown(): Promise<boolean>;
}

export async function startServer(config: Config, deps: ServerDeps = {}): Promise<EchoServer> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const metrics = config.metrics ? createMetrics({ droppedLogLines: () => droppedLogLines(logger) }) : null;
  const app = createApp(config, {
    logger,
    metrics,
    random: deps.random ?? Math.random,
    identity: config.identity ? (deps.identity ?? readIdentity()) : null,
    env: deps.env ?? {},
  });
  const tls = config.https ? await loadTlsMaterial(config) : null;
  const listener = await listen(app, config, { logger, metrics, tls });
  let stopping: Promise<boolean> | undefined;
  return {
    app,
    listener,
    logger,
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
    return listener.shutdown(config.drainTimeoutMs);
  }
}
