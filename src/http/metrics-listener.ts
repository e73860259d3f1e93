// --metrics-port: /metrics on a listener of its own, so operators can keep it off
// the port clients reach (and away from the echo's load). It answers GET and HEAD
// on --metrics-path and 404 elsewhere; it is bound to --host like the echo. Its
// answers are written by the same response writer as every other, and are not
// counted as requests (scrapes would otherwise count themselves).
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/settings.ts';
import type { Logger } from '../ops/logger.ts';
import { TEXT_TYPE, answerHeaders, writeAnswer } from './respond.ts';

function answer(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void {
  const length = Buffer.byteLength(body);
  writeAnswer(req, res, status, answerHeaders(contentType, length, randomUUID()), body, length);
}

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

export async function serveMetrics(config: Config, scrape: () => Promise<string>, contentType: string, logger: Logger): Promise<MetricsListener> {
  const server = createServer({ maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 10_000, keepAliveTimeout: 5000 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== config.metricsPath || (req.method !== 'GET' && req.method !== 'HEAD')) {
      answer(req, res, 404, TEXT_TYPE, `not found: this port serves only GET ${config.metricsPath}\n`);
      return;
    }
    scrape().then((body) => answer(req, res, 200, contentType, body), (err: unknown) => {
      logger.error({ err: (err as Error).message }, 'metrics collection failed');
      answer(req, res, 500, TEXT_TYPE, 'metrics collection failed\n');
    }).catch(() => res.destroy()); // the response object itself failed: nothing left to answer
  });
  server.maxConnections = 64; // scrapers, not clients
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
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
