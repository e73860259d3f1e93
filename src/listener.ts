// Listeners: a plain TCP front accepts each connection and hands the socket to the
// HTTP server. The front is where a PROXY-protocol reader or an HTTP/2 preface sniffer
// sits before the hand-over; the HTTP server never owns the port itself.
import { STATUS_CODES, createServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { App } from './app.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { formatHostPort } from './addresses.ts';

export interface Listener {
  readonly address: AddressInfo;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Stop accepting, let in-flight requests finish within `drainMs`, close the rest. Resolves true when drained in time. */
  shutdown(drainMs: number): Promise<boolean>;
}

export interface ListenerDeps {
  logger: Logger;
  metrics: Metrics | null;
}

export async function listen(app: App, config: Config, deps: ListenerDeps): Promise<Listener> {
  const http = createHttpServer(app, config, deps);
  const front = createTcpServer({ noDelay: true }, (socket) => {
    deps.metrics?.connectionOpened();
    socket.once('close', () => deps.metrics?.connectionClosed());
    http.emit('connection', socket);
  });
  front.maxConnections = config.maxConnections;
  front.on('drop', (data?: { remoteAddress?: string }) => deps.logger.warn({ peer: data?.remoteAddress, limit: config.maxConnections }, 'connection refused: --max-connections reached'));

  const address = await bind(front, config.port, config.host);
  // node:http starts its connection tracking (headers/request timeouts, idle
  // connection closing) on 'listening'. The front owns the port, so tell it here.
  http.emit('listening');
  const host = address.address === '::' || address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
  return {
    address,
    url: `http://${formatHostPort(host, address.port)}`,
    async shutdown(drainMs) {
      front.close();
      http.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        app.idle().then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), drainMs); }),
      ]);
      clearTimeout(timer);
      http.closeAllConnections();
      http.close(); // stops node:http's connection checker
      return drained;
    },
  };
}

function createHttpServer(app: App, config: Config, deps: ListenerDeps): HttpServer {
  const shortest = Math.min(...[config.headersTimeoutMs, config.requestTimeoutMs].filter((t) => t > 0), 30_000);
  const http = createServer({
    maxHeaderSize: config.maxHeaderSize,
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this period; keep it well under them.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
  }, app.handle);
  http.timeout = config.idleTimeoutMs;
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, deps.logger));
  return http;
}

/** A request Node could not parse, or one too slow or too large: answer plainly and close. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket, logger: Logger): void {
  const peer = socket.remoteAddress;
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  let status = 400;
  let reason = 'malformed request';
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    reason = 'request header fields too large (--max-header-size)';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    reason = 'request not received in time (--headers-timeout, --request-timeout)';
  }
  logger.warn({ peer, code: err.code, status }, `bad request: ${reason}`);
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Listen; `::` falls back to 0.0.0.0 on hosts without IPv6. */
function bind(server: TcpServer, port: number, host: string): Promise<AddressInfo> {
  const attempt = (h: string) => new Promise<AddressInfo>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ port, host: h, ipv6Only: false }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
  return attempt(host).catch((err: NodeJS.ErrnoException) => {
    if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
    throw err;
  });
}
