// Accepting connections on a port: the TCP server of one row of the port table, with
// --max-connections and its per-client share, the connection counts, the front
// deadline and the PROXY header. What the connection speaks after that is the
// caller's (`next`).
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Config } from '../config/settings.ts';
import { isRefusal, type ConnectionShares } from '../core/connection-share.ts';
import { connectionClient } from '../core/ledger.ts';
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
  /** --max-connections-per-client: one for every port, so a client's connections count together. */
  shares: ConnectionShares;
}

/** The connection has been accepted (and its PROXY header read): hand it on. Failures close it. */
export type NextStage = (socket: Socket, front: FrontState) => Promise<void> | void;

export function acceptOn(row: PortRow, config: Config, deps: AcceptDeps, next: NextStage): TcpServer {
  const { logger, metrics, log, accepted, shares } = deps;
  const name = row.name;
  /**
   * Holds a slot of `address`'s share for the socket's life; false (the socket
   * destroyed, logged and counted as a refusal) when its client has none left.
   */
  const admit = (socket: Socket, address: string, peerIsClient: boolean): boolean => {
    const slot = shares.admit(address, peerIsClient);
    if (slot === null) return true;
    if (isRefusal(slot)) {
      metrics?.connectionRefused('max_connections_per_client');
      log(
        'warn',
        { listener: name, peer: socket.remoteAddress, client: slot.client, limit: slot.share },
        'connection refused: --max-connections-per-client reached',
      );
      socket.destroy();
      return false;
    }
    socket.once('close', slot.release);
    return true;
  };
  const waitingFor = row.proxyProtocol ? 'before_proxy_header' : row.tls ? 'before_tls_handshake' : 'before_request';
  const server = createTcpServer({ noDelay: true }, (socket) => {
    // Refused as --max-connections refuses: at once, before anything is read. On a
    // port that takes the PROXY protocol the client is the header's source, known
    // only once it is read (the front deadline bounds that wait).
    if (!row.proxyProtocol && !admit(socket, socket.remoteAddress ?? '', true)) return;
    metrics?.connectionOpened();
    socket.once('close', () => {
      metrics?.connectionClosed();
      // Connect and close, nothing sent: a balancer's TCP health check, once a second
      // each. Counted and logged at debug, not reported as a failure.
      if (socket.bytesRead === 0 && !state.expired) {
        metrics?.connectionClosedEarly(waitingFor);
        logger.debug(
          { listener: name, peer: socket.remoteAddress, reason: waitingFor },
          'connection closed without sending anything',
        );
      }
    });
    socket.on('error', () => socket.destroy());
    const state = beginFront(socket, config.headersTimeoutMs, () => {
      log(
        'info',
        { listener: name, peer: socket.remoteAddress, limitMs: config.headersTimeoutMs },
        'connection closed: no complete request within --headers-timeout',
      );
      deps.expire(socket);
    });
    const start = row.proxyProtocol ? acceptProxyHeader(socket, state) : null;
    accepted.inFront.add(socket);
    accepted.count++;
    socket.once('close', () => accepted.inFront.delete(socket));
    // Past the PROXY header: its source is the client. A LOCAL header (the proxy's own
    // health check) names none, so the peer is, as on any other port.
    const admitted = () => {
      const proxy = state.facts.proxy;
      const named = proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null;
      return admit(socket, connectionClient(state.facts), !named) ? next(socket, state) : undefined;
    };
    (start === null ? Promise.resolve(next(socket, state)) : start.then(admitted))
      .finally(() => accepted.inFront.delete(socket))
      .catch((err: Error) => {
        if (!state.expired && socket.bytesRead > 0)
          log(
            'warn',
            { listener: name, peer: socket.remoteAddress, reason: err.message },
            row.proxyProtocol ? 'connection closed: bad or missing PROXY header' : 'connection closed',
          );
        socket.destroy();
      });
  });
  server.maxConnections = config.maxConnections;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics?.connectionRefused('max_connections');
    log(
      'warn',
      { listener: name, peer: data?.remoteAddress, limit: config.maxConnections },
      'connection refused: --max-connections reached',
    );
  });
  return server;
}
