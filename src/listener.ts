// Listeners. A plain TCP front owns each port and runs the front stage for every
// connection: an optional PROXY protocol header, then the protocol choice (HTTP/2
// preface or HTTP/1.1 on the plain port; TLS with ALPN on the HTTPS port). Sockets
// are then handed to one shared HTTP/1.1 server and one shared HTTP/2 server, so
// limits, timeouts, routes, metrics and logs are the same whatever the transport.
import { STATUS_CODES, createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from './addresses.ts';
import type { App } from './app.ts';
import type { Config } from './config.ts';
import { acceptProxyHeader, sniffHttp2Preface } from './connection.ts';
import { bridgeWithInjection, requestAsHeadersFrames, wantsH2cUpgrade } from './h2c-upgrade.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { TlsMaterial } from './tls.ts';

export interface Listener {
  readonly address: AddressInfo;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly httpsAddress: AddressInfo | null;
  readonly httpsUrl: string | null;
  /** Stop accepting, let in-flight requests finish within `drainMs`, close the rest. Resolves true when drained in time. */
  shutdown(drainMs: number): Promise<boolean>;
}

export interface ListenerDeps {
  logger: Logger;
  metrics: Metrics | null;
  tls: TlsMaterial | null;
}

export async function listen(app: App, config: Config, deps: ListenerDeps): Promise<Listener> {
  const { logger, metrics } = deps;
  const http1 = createHttpServer(app, config, deps);
  // node:http2 and node:tls are loaded when first needed: together they cost about
  // 9 MB of resident memory, which a plain HTTP/1.1 deployment should not pay.
  const sessions = new Set<ServerHttp2Session>();
  let h2Server: Http2Server | null = null;
  const h2 = () => {
    if (h2Server !== null) return h2Server;
    h2Server = createH2Server(app, config);
    h2Server.on('session', (s: ServerHttp2Session) => {
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
    return h2Server;
  };

  // HTTP/1.1 connections, so a drain can mark answers not yet begun `Connection: close`.
  const http1Sockets = new Set<Socket>();
  const toHttp1 = (socket: Socket) => {
    http1Sockets.add(socket);
    socket.once('close', () => http1Sockets.delete(socket));
    http1.emit('connection', socket);
  };

  http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (wantsH2cUpgrade(req)) {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
      h2().emit('connection', bridgeWithInjection(socket as Socket, head, requestAsHeadersFrames(req)));
    } else {
      app.upgrade(req, socket, head);
    }
  });

  /** The front stage, shared by both ports; failures close the connection and are logged. */
  const front = (name: 'http' | 'https', next: (socket: Socket) => Promise<void> | void) => {
    const proxy = config.proxyProtocol.includes(name);
    const server = createTcpServer({ noDelay: true }, (socket) => {
      metrics?.connectionOpened();
      socket.once('close', () => metrics?.connectionClosed());
      socket.on('error', () => socket.destroy());
      const start = proxy ? acceptProxyHeader(socket, config.headersTimeoutMs) : null;
      (start === null ? Promise.resolve(next(socket)) : start.then(() => next(socket))).catch((err: Error) => {
        logger.warn({ listener: name, peer: socket.remoteAddress, reason: err.message }, proxy ? 'connection closed: bad or missing PROXY header' : 'connection closed');
        socket.destroy();
      });
    });
    server.maxConnections = config.maxConnections;
    server.on('drop', (data?: { remoteAddress?: string }) => logger.warn({ listener: name, peer: data?.remoteAddress, limit: config.maxConnections }, 'connection refused: --max-connections reached'));
    return server;
  };

  const plain = front('http', async (socket) => {
    if (config.h2c && await sniffHttp2Preface(socket, config.headersTimeoutMs)) h2().emit('connection', socket);
    else toHttp1(socket);
    socket.resume();
  });

  let tlsFront: TcpServer | null = null;
  let stopWatching = () => {};
  if (config.https && deps.tls !== null) {
    const tlsServer = process.getBuiltinModule('node:tls').createServer({
      ...deps.tls.context,
      ALPNProtocols: ['h2', 'http/1.1'],
      requestCert: config.tlsClientAuth !== 'none',
      rejectUnauthorized: config.tlsClientAuth === 'require',
      handshakeTimeout: config.headersTimeoutMs,
    });
    tlsServer.on('secureConnection', (s: TLSSocket) => {
      if (s.alpnProtocol === 'h2') h2().emit('connection', s);
      else toHttp1(s);
    });
    tlsServer.on('tlsClientError', (err: Error, s: TLSSocket) => logger.info({ peer: s.remoteAddress, reason: err.message }, 'TLS handshake failed'));
    stopWatching = deps.tls.watch((context) => tlsServer.setSecureContext(context), logger);
    tlsFront = front('https', (socket) => { tlsServer.emit('connection', socket); });
  }

  const address = await bind(plain, config.port, config.host);
  const httpsAddress = tlsFront === null ? null : await bind(tlsFront, config.httpsPort, config.host);
  // node:http starts its connection tracking (headers/request timeouts, idle
  // connection closing) on 'listening'. The fronts own the ports, so tell it here.
  http1.emit('listening');
  const urlOf = (scheme: string, a: AddressInfo) => `${scheme}://${formatHostPort(a.address === '::' || a.address === '0.0.0.0' ? '127.0.0.1' : a.address, a.port)}`;
  return {
    address,
    url: urlOf('http', address),
    httpsAddress,
    httpsUrl: httpsAddress === null ? null : urlOf('https', httpsAddress),
    async shutdown(drainMs) {
      plain.close();
      tlsFront?.close();
      stopWatching();
      http1.closeIdleConnections();
      for (const s of http1Sockets) endAfterAnswer(s);
      for (const s of sessions) s.close(); // GOAWAY: running streams finish, no new ones
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        app.idle().then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), drainMs); }),
      ]);
      clearTimeout(timer);
      http1.closeAllConnections();
      for (const s of sessions) s.destroy();
      http1.close(); // stops node:http's connection checker
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
    // Only these upgrades leave HTTP/1.1; any other Upgrade header is simply echoed.
    shouldUpgradeCallback: (req: IncomingMessage) =>
      (config.h2c && wantsH2cUpgrade(req)) || (config.websocket && req.headers.upgrade?.toLowerCase() === 'websocket'),
  }, app.handle);
  http.timeout = config.idleTimeoutMs;
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, deps.logger));
  return http;
}

/**
 * The answer being prepared on an HTTP/1.1 connection goes out with `Connection: close`,
 * so the client does not reuse a connection that the drain is about to cut. (Requests
 * that arrive during the drain get it from the app, which sees readiness failed.)
 */
function endAfterAnswer(socket: Socket): void {
  // node:http keeps the response in progress here; its own closeIdleConnections reads it too.
  const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (res != null && !res.headersSent) res.shouldKeepAlive = false;
}

function createH2Server(app: App, config: Config): Http2Server {
  const { createServer: createHttp2Server } = process.getBuiltinModule('node:http2');
  const h2 = createHttp2Server({
    settings: { maxConcurrentStreams: 100, maxHeaderListSize: config.maxHeaderSize },
    maxSessionMemory: 32,
  }, app.handle as unknown as Parameters<typeof createHttp2Server>[1]);
  h2.setTimeout(config.idleTimeoutMs);
  return h2;
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
