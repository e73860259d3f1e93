// Listeners. A plain TCP front owns each port and runs the front stage for every
// connection: an optional PROXY protocol header, then the protocol choice (HTTP/2
// preface or HTTP/1.1 on the plain port; TLS with ALPN on the HTTPS port). Sockets
// are then handed to one shared HTTP/1.1 server and one shared HTTP/2 server, so
// limits, timeouts, routes, metrics and logs are the same whatever the transport.
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/settings.ts';
import { limitedLog, type LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { formatHostPort } from '../util/addresses.ts';
import { answerClientError, responseInProgress } from './client-error.ts';
import { acceptProxyHeader, beginFront, factsOf, frontDone, frontOf, reopenFront, shareFront, sniffHttp2Preface, type FrontState } from './front.ts';
import { firstRequestSocket } from './h2-authority.ts';
import { createH2Stage, type H2Stage } from './h2.ts';
import { lingerOnEarlyClose } from './linger.ts';
import { createProgressWatch, socketProgress } from './progress.ts';
import { bridgeWithInjection, requestAsHeadersFrames, wantsH2cUpgrade } from './h2c-upgrade.ts';
import type { Handlers } from './handlers.ts';
import { describeTls, type TlsMaterial } from './tls.ts';

export type { Handlers };

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
  /** A --workers worker with --worker-balance reuseport: bind a socket of its own (SO_REUSEPORT). */
  reusePort?: boolean;
}

export async function listen(app: Handlers, config: Config, deps: ListenerDeps): Promise<Listener> {
  const { logger, metrics } = deps;
  const log = limitedLog(logger);
  const http1 = createHttpServer(app, config);
  // node:http2 and node:tls are loaded when first needed: together they cost about
  // 9 MB of resident memory, which a plain HTTP/1.1 deployment should not pay.
  let h2Stage: H2Stage | null = null;
  const progress = createProgressWatch(config.idleTimeoutMs);
  const toH2 = (socket: Duplex, front: FrontState | undefined) => (h2Stage ??= createH2Stage(app, config, logger, { progress, log })).handOver(socket, front);
  // The first request of an HTTP/2 connection may lack :authority and Host (HAProxy's
  // h2 health check); h2-authority.ts makes nghttp2 let it through to the app.
  const firstRequestToH2 = async (socket: Socket | TLSSocket, front: FrontState | undefined) => {
    const taken = await firstRequestSocket(socket);
    if (taken !== socket && front !== undefined) shareFront(front, taken);
    toH2(taken, front);
  };

  // The request each HTTP/1.1 connection is answering (or answered last).
  const lastRequest = new WeakMap<Duplex, IncomingMessage>();
  // The first request on a connection ends its front stage.
  http1.prependListener('request', (req: IncomingMessage) => {
    frontDone(frontOf(req.socket));
    lastRequest.set(req.socket, req);
  });
  // HTTP/1.1 connections, so a drain can mark answers not yet begun `Connection: close`.
  const http1Sockets = new Set<Socket>();
  http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const front = frontOf(req.socket);
    try {
      if (refusePipelinedUpgrade(req.socket, log)) return;
      // No longer HTTP/1.1: the app, not the drain's idle check, ends it.
      http1Sockets.delete(req.socket);
      if (wantsH2cUpgrade(req)) {
        // The front stage goes on until the client's HTTP/2 preface arrives (the
        // upgrading request becomes stream 1 only then), and an expiry now closes
        // the connection: it is no longer HTTP/1.1, so no 408 is written.
        httpSockets.delete(req.socket);
        if (front !== undefined) {
          reopenFront(front, config.headersTimeoutMs, () => {
            log('info', { listener: 'http', peer: req.socket.remoteAddress, limitMs: config.headersTimeoutMs }, 'connection closed: no HTTP/2 stream within --headers-timeout of the h2c upgrade');
            socket.destroy();
          });
        }
        socket.write(app.switchingProtocols('h2c'));
        const bridge = bridgeWithInjection(socket as Socket, head, requestAsHeadersFrames(req));
        if (front !== undefined) shareFront(front, bridge);
        toH2(bridge, front);
      } else {
        frontDone(front);
        app.upgrade(req, socket, head, factsOf(req));
      }
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'upgrade failed');
      socket.destroy();
    }
  });

  // Connections still in the front stage (PROXY header, preface sniffing): a drain waits for their hand-over.
  const inFront = new Set<Socket>();
  let accepted = 0; // connections accepted so far, on both ports
  /** The front stage, shared by both ports; failures close the connection and are logged. */
  const front = (name: 'http' | 'https', next: (socket: Socket, front: FrontState) => Promise<void> | void) => {
    const proxy = config.proxyProtocol.includes(name);
    const waitingFor = proxy ? 'before_proxy_header' : name === 'https' ? 'before_tls_handshake' : 'before_request';
    const server = createTcpServer({ noDelay: true }, (socket) => {
      metrics?.connectionOpened();
      socket.once('close', () => {
        metrics?.connectionClosed();
        // Connect and close, nothing sent: a balancer's TCP health check, once a second
        // each. Counted and logged at debug, not reported as a failure.
        if (socket.bytesRead === 0 && !state.expired) {
          metrics?.connectionClosedEarly(waitingFor);
          logger.debug({ listener: name, peer: socket.remoteAddress, reason: waitingFor }, 'connection closed without sending anything');
        }
      });
      socket.on('error', () => socket.destroy());
      const state = beginFront(socket, config.headersTimeoutMs, () => {
        log('info', { listener: name, peer: socket.remoteAddress, limitMs: config.headersTimeoutMs }, 'connection closed: no complete request within --headers-timeout');
        // On HTTP/1.1 the client gets a 408 (unless a response is already on its way).
        const http = httpSocketOf(socket);
        if (http !== null) answerClientError(Object.assign(new Error('front deadline'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), http, app);
        else socket.destroy();
      });
      const start = proxy ? acceptProxyHeader(socket, state) : null;
      inFront.add(socket);
      accepted++;
      socket.once('close', () => inFront.delete(socket));
      (start === null ? Promise.resolve(next(socket, state)) : start.then(() => next(socket, state))).finally(() => inFront.delete(socket)).catch((err: Error) => {
        if (!state.expired && socket.bytesRead > 0) log('warn', { listener: name, peer: socket.remoteAddress, reason: err.message }, proxy ? 'connection closed: bad or missing PROXY header' : 'connection closed');
        socket.destroy();
      });
    });
    server.maxConnections = config.maxConnections;
    server.on('drop', (data?: { remoteAddress?: string }) => log('warn', { listener: name, peer: data?.remoteAddress, limit: config.maxConnections }, 'connection refused: --max-connections reached'));
    return server;
  };

  /** The socket node:http reads a connection from, once the front stage handed it over. */
  const httpSockets = new WeakMap<Socket, Socket>();
  const httpSocketOf = (raw: Socket) => httpSockets.get(raw) ?? null;
  const toHttp1 = (raw: Socket, socket: Socket) => {
    httpSockets.set(raw, socket);
    http1Sockets.add(socket);
    socket.once('close', () => http1Sockets.delete(socket));
    lingerOnEarlyClose(socket, () => lastRequest.get(socket));
    // An answer (or WebSocket echoes) the peer does not read, while it keeps sending: closed.
    const unwatch = progress.watch(() => socketProgress(socket), () => {
      log('info', { peer: raw.remoteAddress, limitMs: config.idleTimeoutMs }, 'connection closed: no progress sending its answer within --idle-timeout');
      socket.destroy();
    });
    socket.once('close', unwatch);
    http1.emit('connection', socket);
  };

  const plain = front('http', async (socket, state) => {
    if (config.h2c && await sniffHttp2Preface(socket)) await firstRequestToH2(socket, state);
    else toHttp1(socket, socket);
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
      // node:tls keeps the TCP socket it wraps as `_parent`; it is the only way back to it.
      const raw = (s as TLSSocket & { _parent?: Socket })._parent;
      const state = raw === undefined ? undefined : frontOf(raw);
      try { // an event handler: nothing a client sends may escape it and end the process
        if (state !== undefined) {
          shareFront(state, s);
          state.facts.tls = describeTls(s);
        }
        if (s.alpnProtocol === 'h2') {
          firstRequestToH2(s, state).catch((err: Error) => {
            log('warn', { peer: s.remoteAddress, reason: err.message }, 'connection closed: TLS hand-over failed');
            s.destroy();
          });
        }
        else if (raw !== undefined) toHttp1(raw, s);
        else http1.emit('connection', s);
      } catch (err) {
        log('warn', { peer: s.remoteAddress, reason: (err as Error).message }, 'connection closed: TLS hand-over failed');
        s.destroy();
      }
    });
    tlsServer.on('tlsClientError', (err: Error, s: TLSSocket) => {
      // Nothing received: the front counts and logs it as a connection closed early.
      const silent = (s as TLSSocket & { _parent?: Socket })._parent?.bytesRead === 0;
      if (!silent) log('info', { peer: s.remoteAddress, reason: err.message }, 'TLS handshake failed');
      s.destroy(); // a listener for this event owns the socket: without this it stays open
    });
    stopWatching = deps.tls.watch((context) => tlsServer.setSecureContext(context), logger);
    tlsFront = front('https', (socket) => { tlsServer.emit('connection', socket); });
  }

  const own = deps.reusePort === true;
  const address = await bind(plain, config.port, config.host, 'http', own);
  const httpsAddress = tlsFront === null ? null : await bind(tlsFront, config.httpsPort, config.host, 'https', own).catch((err: unknown) => {
    plain.close();
    stopWatching();
    throw err;
  });
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
      // Closing a listening socket resets the connections still in its accept queue,
      // whose clients have already sent their requests. Each two turns of the event
      // loop include a poll, which accepts some of them: the port closes after a poll
      // that accepted none (at most 20 rounds). They are answered like any other.
      for (let round = 0, before = -1; round < 20 && before !== accepted; round++) {
        before = accepted;
        await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
      }
      plain.close();
      tlsFront?.close();
      stopWatching();
      // No keep-alive connection is cut here: one that looks idle may hold a request
      // the client has already sent and node:http has not read yet. Each answers its
      // next request with `Connection: close`; one that stays idle for a grace period
      // is closed (see closeIdleDuringDrain).
      for (const s of http1Sockets) endAfterAnswer(s);
      h2Stage?.closeAll();
      const idleWatch = closeIdleDuringDrain(http1Sockets, () => inFront.size, Math.min(config.drainIdleGraceMs, drainMs));
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        app.idle().then(() => idleWatch.done).then(() => app.idle()).then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), drainMs); }),
      ]);
      clearTimeout(timer);
      idleWatch.stop();
      http1.closeAllConnections();
      h2Stage?.destroyAll();
      http1.close(); // stops node:http's connection checker
      progress.stop();
      return drained;
    },
  };
}

function createHttpServer(app: Handlers, config: Config): HttpServer {
  const shortest = Math.min(...[config.headersTimeoutMs, config.requestTimeoutMs].filter((t) => t > 0), 30_000);
  const http = createServer({
    maxHeaderSize: config.maxHeaderSize,
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this period; keep it well under them.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
    // Only these upgrades leave HTTP/1.1; any other Upgrade header is simply echoed.
    shouldUpgradeCallback: (req: IncomingMessage) => {
      // h2c is cleartext HTTP/2 by definition (RFC 9113): never an upgrade inside TLS.
      const h2c = config.h2c && (req.socket as Partial<TLSSocket>).encrypted !== true && wantsH2cUpgrade(req);
      const websocket = !h2c && config.websocket && req.headers.upgrade?.toLowerCase() === 'websocket';
      // Admission comes before any 101; a refused upgrade is served (refused) as a plain request.
      return (h2c || websocket) && app.mayUpgrade(req, h2c, factsOf(req));
    },
    // A request without Host is the app's to refuse (400, logged and counted), not node:http's.
    requireHostHeader: false,
  }, (req: IncomingMessage, res: ServerResponse) => app.handle(req, res, factsOf(req)));
  http.timeout = config.idleTimeoutMs;
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, app));
  // An Expect other than 100-continue: the app answers 417 and records it like any request.
  http.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => app.handle(req, res, factsOf(req)));
  // CONNECT asks for a tunnel; this is not a proxy. Answered 405 and recorded.
  http.on('connect', (req: IncomingMessage, socket: Socket) => app.refuseTunnel(req, socket, factsOf(req)));
  return http;
}

/**
 * An upgrade that arrived pipelined behind an answer still being written: switching
 * protocols now would put that answer inside the new protocol's bytes. It is not
 * taken; the connection closes once the earlier answer is complete (a client that
 * wants to upgrade waits for its earlier answers, as RFC 9110 section 7.8 expects).
 */
function refusePipelinedUpgrade(socket: Socket, log: LimitedLog): boolean {
  const current = responseInProgress(socket);
  if (current === null) return false;
  log('warn', { peer: socket.remoteAddress }, 'upgrade refused: pipelined behind an unfinished response; the connection closes after it');
  if (!current.headersSent) current.shouldKeepAlive = false;
  if (current.writableFinished) socket.end();
  else {
    current.once('finish', () => socket.end());
    current.once('close', () => { if (!current.writableFinished) socket.destroy(); });
  }
  return true;
}

/**
 * The answer being prepared on an HTTP/1.1 connection goes out with `Connection: close`,
 * so the client does not reuse a connection that the drain is about to cut. (Requests
 * that arrive during the drain get it from the app, which sees readiness failed.)
 */
function endAfterAnswer(socket: Socket): void {
  const res = responseInProgress(socket);
  if (res !== null && !res.headersSent) res.shouldKeepAlive = false;
}

/**
 * During a drain, closes each HTTP/1.1 connection once it has been idle (no answer
 * under way, not one byte read) for a whole `graceMs` (--drain-idle-grace); `done`
 * resolves when none is left and none is still in the front stage (`inFront`). A
 * connection that is answering closes by itself after that answer. The first look
 * waits at least two turns of the event loop, so bytes already in the kernel's
 * buffers are read first: a request sent just before the drain began is answered
 * even with no grace at all.
 */
function closeIdleDuringDrain(sockets: Set<Socket>, inFront: () => number, graceMs: number): { done: Promise<void>; stop(): void } {
  const seen = new Map<Socket, number>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let finish = () => {};
  const done = new Promise<void>((resolve) => { finish = resolve; });
  const look = () => {
    if (stopped) return;
    for (const s of sockets) {
      const read = s.bytesRead;
      const idle = responseInProgress(s) === null;
      if (idle && seen.get(s) === read) s.destroy();
      else seen.set(s, idle ? read : -1);
    }
    if (sockets.size === 0 && inFront() === 0) finish();
    else timer = setTimeout(look, Math.max(graceMs, 50));
  };
  for (const s of sockets) seen.set(s, responseInProgress(s) === null ? s.bytesRead : -1);
  if (sockets.size === 0 && inFront() === 0) finish();
  else {
    const afterTwoTurns = (then: () => void) => setImmediate(() => setImmediate(then));
    if (graceMs === 0) afterTwoTurns(look);
    else timer = setTimeout(() => afterTwoTurns(look), graceMs);
  }
  return { done, stop: () => { stopped = true; clearTimeout(timer); } };
}

/** Listen; `::` falls back to 0.0.0.0 on hosts without IPv6. Errors say which listener and port failed. */
function bind(server: TcpServer, port: number, host: string, listener: string, reusePort: boolean): Promise<AddressInfo> {
  const attempt = (h: string) => new Promise<AddressInfo>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // reusePort needs `exclusive`: in a cluster worker the socket is then its own, not the primary's.
    server.listen({ port, host: h, ipv6Only: false, ...(reusePort ? { reusePort: true, exclusive: true } : {}) }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
  return attempt(host).catch((err: NodeJS.ErrnoException) => {
    if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
    throw err;
  }).catch((err: unknown) => { throw Object.assign(err as Error, { listener, port }); });
}
