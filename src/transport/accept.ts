// Accepting connections on a port: the TCP server of one row of the port table, with
// --max-connections, the connection counts, the front deadline and the PROXY header.
// What the connection speaks after that is the caller's (`next`).
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Config } from '../config/settings.ts';
import type { PortRow } from '../core/ports.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { acceptProxyHeader, beginFront, type FrontState } from './front.ts';

/** What every port's acceptor shares: the drain waits on these. */
export interface Accepted {
  /** Connections still in the front stage (PROXY header, preface sniffing, TLS handshake). */
  readonly inFront: Set<Socket>;
  /** Connections accepted so far, on every port. */
  count: number;
}

export interface AcceptDeps {
  logger: Logger;
  metrics: Metrics | null;
  log: LimitedLog;
  accepted: Accepted;
  /** The front deadline passed (no complete request within --headers-timeout of the connect). */
  expire(socket: Socket): void;
}

/** The connection has been accepted (and its PROXY header read): hand it on. Failures close it. */
export type NextStage = (socket: Socket, front: FrontState) => Promise<void> | void;

export function acceptOn(row: PortRow, config: Config, deps: AcceptDeps, next: NextStage): TcpServer {
  const { logger, metrics, log, accepted } = deps;
  const name = row.name;
  const waitingFor = row.proxyProtocol ? 'before_proxy_header' : row.tls ? 'before_tls_handshake' : 'before_request';
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
      deps.expire(socket);
    });
    const start = row.proxyProtocol ? acceptProxyHeader(socket, state) : null;
    accepted.inFront.add(socket);
    accepted.count++;
    socket.once('close', () => accepted.inFront.delete(socket));
    (start === null ? Promise.resolve(next(socket, state)) : start.then(() => next(socket, state))).finally(() => accepted.inFront.delete(socket)).catch((err: Error) => {
      if (!state.expired && socket.bytesRead > 0) log('warn', { listener: name, peer: socket.remoteAddress, reason: err.message }, row.proxyProtocol ? 'connection closed: bad or missing PROXY header' : 'connection closed');
      socket.destroy();
    });
  });
  server.maxConnections = config.maxConnections;
  server.on('drop', (data?: { remoteAddress?: string }) => log('warn', { listener: name, peer: data?.remoteAddress, limit: config.maxConnections }, 'connection refused: --max-connections reached'));
  return server;
}
