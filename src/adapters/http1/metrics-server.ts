// --metrics-port: /metrics on a listener of its own, so operators can keep it off
// the port clients reach (and away from the echo's load). It answers GET and HEAD
// on --metrics-path and 404 elsewhere; it is bound to --host like the echo. Its
// answers are written by the same response writer as every other, and are not
// counted as requests (scrapes would otherwise count themselves).
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from '../../config/settings.ts';
import type { Logger } from '../../ops/logger.ts';
import { limitedLog } from '../../ops/log-limit.ts';
import { TEXT_TYPE, answerHeaders } from '../../handlers/answer.ts';
import { writeAnswer } from './respond.ts';

function answer(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  const length = Buffer.byteLength(body);
  writeAnswer(req, res, status, answerHeaders(contentType, length, randomUUID()), body, length);
}

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

/** Scrapers, not clients: a few connections are plenty, and more would only be held. */
const MAX_CONNECTIONS = 64;
/** Node checks its headers and request timeouts on a timer: often enough that they hold. */
const CHECK_EVERY_MS = 1000;

export async function serveMetrics(
  config: Config,
  scrape: () => Promise<string>,
  contentType: string,
  logger: Logger,
): Promise<MetricsListener> {
  const limited = limitedLog(logger);
  /** Open connections, oldest first, with the number of requests each has being answered. */
  const open = new Map<Socket, { answering: number }>();
  const server = createServer(
    {
      maxHeaderSize: 16 * 1024,
      headersTimeout: 5000,
      requestTimeout: 10_000,
      keepAliveTimeout: 5000,
      connectionsCheckingInterval: CHECK_EVERY_MS,
    },
    (req, res) => {
      const state = open.get(req.socket);
      if (state !== undefined) {
        state.answering++;
        res.once('close', () => {
          state.answering--;
        });
      }
      const path = (req.url ?? '/').split('?')[0];
      if (path !== config.metricsPath || (req.method !== 'GET' && req.method !== 'HEAD')) {
        answer(req, res, 404, TEXT_TYPE, `not found: this port serves only GET ${config.metricsPath}\n`);
        return;
      }
      scrape()
        .then(
          (body) => answer(req, res, 200, contentType, body),
          (err: unknown) => {
            limited('error', { err: (err as Error).message }, 'metrics collection failed');
            answer(req, res, 500, TEXT_TYPE, 'metrics collection failed\n');
          },
        )
        .catch(() => res.destroy()); // the response object itself failed: nothing left to answer
    },
  );
  // A response a scraper does not read holds its connection no longer than this.
  server.setTimeout(10_000);
  // When every slot is taken, the oldest connection with no answer in progress (idle,
  // or still sending its request) makes room, so connections that send nothing
  // cannot keep a scraper out. Only when every one is being answered is the new one closed.
  server.on('connection', (socket: Socket) => {
    if (open.size >= MAX_CONNECTIONS) {
      for (const [other, state] of open) {
        if (state.answering === 0) {
          open.delete(other);
          other.destroy();
          limited('warn', { connections: MAX_CONNECTIONS }, 'metrics port full: closed its oldest idle connection');
          break;
        }
      }
      if (open.size >= MAX_CONNECTIONS) {
        limited('warn', { connections: MAX_CONNECTIONS }, 'metrics port full: connection refused');
        socket.destroy();
        return;
      }
    }
    open.set(socket, { answering: 0 });
    socket.once('close', () => {
      open.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    const listen = (host: string) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) listen('0.0.0.0');
        else reject(Object.assign(err, { message: `metrics port ${config.metricsPort}: ${err.message}` }));
      });
      server.listen({ port: config.metricsPort, host, ipv6Only: false, exclusive: true }, () => resolve());
    };
    listen(config.host);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
