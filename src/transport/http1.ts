// The HTTP/1.1 stage: one node:http server for every HTTP/1.1 connection of every
// port. The fronts own the ports and hand each connection over once its front stage
// chose HTTP/1.1; this stage keeps what the drain and the front deadline need to know
// about them (which connections are HTTP/1.1, and what each is answering).
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/settings.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import { answerClientError, answerRequestTimeout } from './client-error.ts';
import { factsOf, frontDone, frontOf } from './front.ts';
import { wantsH2cUpgrade } from './h2c-upgrade.ts';
import type { Handlers } from './handlers.ts';
import { lingerOnEarlyClose } from './linger.ts';
import { socketProgress, type ProgressWatch } from './progress.ts';

export interface Http1Stage {
  readonly server: HttpServer;
  /** Connections speaking HTTP/1.1 now, so a drain can mark answers not yet begun `Connection: close`. */
  readonly sockets: ReadonlySet<Socket>;
  /** Takes a connection whose front stage chose HTTP/1.1: `socket` is what node:http reads (the TLS socket over `raw`, or `raw`). */
  take(raw: Socket, socket: Socket): void;
  /** The connection (`req.socket` of its upgrade) leaves HTTP/1.1: the new protocol, not this stage, ends it. */
  release(socket: Socket): void;
  /** The front deadline of `raw` passed: a 408 when it speaks HTTP/1.1 here, else closed. */
  readonly expire: (raw: Socket) => void;
}

export interface Http1Deps {
  log: LimitedLog;
  progress: ProgressWatch;
}

export function createHttp1Stage(app: Handlers, config: Config, deps: Http1Deps): Http1Stage {
  const server = createHttpServer(app, config);
  // The request each HTTP/1.1 connection is answering (or answered last).
  const lastRequest = new WeakMap<Socket, IncomingMessage>();
  // The first request on a connection ends its front stage.
  server.prependListener('request', (req: IncomingMessage) => {
    frontDone(frontOf(req.socket));
    lastRequest.set(req.socket, req);
  });
  const sockets = new Set<Socket>();
  /** The socket node:http reads a connection from, by the TCP socket the front accepted. */
  const readFrom = new WeakMap<Socket, Socket>();
  return {
    server,
    sockets,
    take(raw, socket) {
      readFrom.set(raw, socket);
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      lingerOnEarlyClose(socket, () => lastRequest.get(socket));
      // An answer (or WebSocket echoes) the peer does not read, while it keeps sending: closed.
      const unwatch = deps.progress.watch(
        () => socketProgress(socket),
        () => {
          deps.log(
            'info',
            { peer: raw.remoteAddress, limitMs: config.idleTimeoutMs },
            'connection closed: no progress sending its answer within --idle-timeout',
          );
          socket.destroy();
        },
      );
      socket.once('close', unwatch);
      server.emit('connection', socket);
    },
    release(socket) {
      sockets.delete(socket);
      readFrom.delete(socket);
    },
    expire: (raw) => {
      // On HTTP/1.1 the client gets a 408 (unless a response is already on its way).
      const socket = readFrom.get(raw);
      if (socket !== undefined) answerRequestTimeout(socket, app);
      else raw.destroy();
    },
  };
}

function createHttpServer(app: Handlers, config: Config): HttpServer {
  const shortest = Math.min(...[config.headersTimeoutMs, config.requestTimeoutMs].filter((t) => t > 0), 30_000);
  const http = createServer(
    {
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
    },
    (req: IncomingMessage, res: ServerResponse) => app.handle(req, res, factsOf(req)),
  );
  http.timeout = config.idleTimeoutMs;
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, app));
  // An Expect other than 100-continue: the app answers 417 and records it like any request.
  http.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => app.handle(req, res, factsOf(req)));
  // CONNECT asks for a tunnel; this is not a proxy. Answered 405 and recorded.
  http.on('connect', (req: IncomingMessage, socket: Socket) => app.refuseTunnel(req, socket, factsOf(req)));
  return http;
}
