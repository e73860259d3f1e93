// Listeners, one per row of the port table (core/ports.ts). A plain TCP front owns
// each port and runs the front stage for every connection: an optional PROXY
// protocol header, then the protocol choice (HTTP/2 preface or HTTP/1.1 on a plain
// port; TLS with ALPN on a TLS port). Sockets are then handed to one shared HTTP/1.1
// stage and one shared HTTP/2 stage, so limits, timeouts, routes, metrics and logs
// are the same whatever the port or the protocol.
import type { Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo, Server as TcpServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/settings.ts';
import { ConnectionShares } from '../core/connection-share.ts';
import { portTable, type PortRow } from '../core/ports.ts';
import { limitedLog, type LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { formatHostPort } from '../util/addresses.ts';
import { acceptOn, type Accepted, type NextStage } from './accept.ts';
import { bindDatagrams } from './datagram.ts';
import { drain } from './drain.ts';
import { frontDone, shareFront, sniffHttp2Preface, type FrontState } from './front.ts';
import { firstRequestSocket } from './h2-authority.ts';
import { createH2Stage, type H2Stage } from './h2.ts';
import type { Handlers, L4Handlers } from './handlers.ts';
import { createHttp1Stage, type Http1Stage } from './http1.ts';
import { createProgressWatch } from './progress.ts';
import { createTlsEchoFront } from './tls-echo-front.ts';
import { createTlsFront } from './tls-front.ts';
import type { TlsMaterial } from './tls.ts';
import { dispatchUpgrades } from './upgrade-dispatch.ts';

export type { Handlers };

export interface BoundPort {
  readonly row: PortRow;
  readonly address: AddressInfo;
  /** e.g. https://127.0.0.1:8443 */
  readonly url: string;
}

export interface Listener {
  readonly address: AddressInfo;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly httpsAddress: AddressInfo | null;
  readonly httpsUrl: string | null;
  /** Every port listened on, in the order of the port table. */
  readonly ports: readonly BoundPort[];
  /** Stop accepting, let in-flight requests finish within `drainMs`, close the rest. Resolves true when drained in time. */
  shutdown(drainMs: number): Promise<boolean>;
}

export interface ListenerDeps {
  logger: Logger;
  metrics: Metrics | null;
  tls: TlsMaterial | null;
  /** A --workers worker with --worker-balance reuseport: bind a socket of its own (SO_REUSEPORT). */
  reusePort?: boolean;
  /** The TCP and UDP echoes (adapters/l4/); their ports are not opened without them. */
  l4?: L4Handlers;
}

/** The HTTP/2 stage, created when a connection first needs it. */
interface H2Entry {
  readonly stage: H2Stage | null;
  readonly take: (socket: Duplex, front: FrontState | undefined) => void;
  /** Takes a connection that has sent its preface, by way of its first request (h2-authority.ts). */
  readonly takeFirstRequest: (socket: Socket, front: FrontState | undefined) => Promise<void>;
}

export async function listen(app: Handlers, config: Config, deps: ListenerDeps): Promise<Listener> {
  const { logger } = deps;
  const log = limitedLog(logger);
  const progress = createProgressWatch(config.idleTimeoutMs);
  const h2 = lazyH2Stage(() => createH2Stage(app, config, logger, { progress, log, metrics: deps.metrics }));
  const http1 = createHttp1Stage(app, config, { log, progress });
  http1.server.on('upgrade', dispatchUpgrades(app, config, { logger, log, http1, toH2: h2.take }));
  const accepted: Accepted = { inFront: new Set(), count: 0 };
  const acceptDeps = {
    logger,
    metrics: deps.metrics,
    log,
    accepted,
    expire: http1.expire,
    shares: new ConnectionShares(config),
  };
  const watching: (() => void)[] = [];
  const fronts: { row: PortRow; server: TcpServer }[] = [];
  const datagramRows: PortRow[] = [];
  for (const row of portTable(config)) {
    if (row.protocols.includes('udp')) {
      if (deps.l4 !== undefined) datagramRows.push(row);
      continue;
    }
    const next = nextStage(row, config, deps, { http1, h2, watching, log });
    // A TLS port without TLS material (a library caller's choice) is not opened.
    if (next !== null) fronts.push({ row, server: acceptOn(row, config, acceptDeps, next) });
  }
  const stopWatching = () => {
    for (const stop of watching) stop();
  };
  const ports = await bindAll(fronts, deps.reusePort === true).catch((err: unknown) => {
    stopWatching();
    throw err;
  });
  const datagrams: UdpSocket[] = [];
  for (const row of datagramRows) {
    try {
      const { socket, address } = await bindDatagrams(row, deps.l4!, log);
      datagrams.push(socket);
      ports.push({ row, address, url: urlOf('udp', address) });
    } catch (err) {
      stopWatching();
      for (const { server } of fronts) server.close();
      for (const d of datagrams) d.close();
      throw err;
    }
  }
  // node:http starts its connection tracking (headers/request timeouts, idle
  // connection closing) on 'listening'. The fronts own the ports, so tell it here.
  http1.server.emit('listening');
  const plain = ports.find((p) => p.row.name === 'http')!;
  const https = ports.find((p) => p.row.name === 'https') ?? null;
  return {
    address: plain.address,
    url: plain.url,
    httpsAddress: https?.address ?? null,
    httpsUrl: https?.url ?? null,
    ports,
    shutdown: async (drainMs) => {
      const l4Fronts = fronts.filter((f) => f.row.protocols.includes('tcp')).map((f) => f.server);
      const http = drain(
        app,
        config,
        {
          fronts: fronts.filter((f) => !f.row.protocols.includes('tcp')).map((f) => f.server),
          accepted,
          http1,
          h2: () => h2.stage,
          progress,
          stopWatching,
        },
        drainMs,
      );
      for (const d of datagrams) d.close();
      const l4 = l4Fronts.length === 0 ? true : drainTcp(l4Fronts, deps.l4!, drainMs);
      const [a, b] = await Promise.all([http, l4]);
      return a && b;
    },
  };
}

interface Stages {
  http1: Http1Stage;
  h2: H2Entry;
  /** Stops of the certificate watches the TLS fronts started. */
  watching: (() => void)[];
  log: LimitedLog;
}

/** The TCP echo ports stop accepting (after a poll, as the HTTP ports do), then their connections get `drainMs`. */
async function drainTcp(servers: readonly TcpServer[], l4: L4Handlers, drainMs: number): Promise<boolean> {
  await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  for (const server of servers) server.close();
  return l4.drain(drainMs);
}

/** What a port does with a connection once it is accepted: null when the port cannot be served. */
function nextStage(row: PortRow, config: Config, deps: ListenerDeps, stages: Stages): NextStage | null {
  const { http1, h2 } = stages;
  if (row.protocols.includes('tcp')) {
    const { l4 } = deps;
    if (l4 === undefined) return null;
    if (row.tls) {
      if (deps.tls === null) return null;
      const tls = createTlsEchoFront(deps.tls, config, { logger: deps.logger, log: stages.log, l4 });
      stages.watching.push(tls.stopWatching);
      return (socket) => tls.take(socket);
    }
    // Past the PROXY header (when the row takes one), a raw TCP echo has no more front stage.
    return (socket, front) => {
      frontDone(front);
      l4.tcp(socket, front.facts);
    };
  }
  if (row.tls) {
    if (deps.tls === null) return null;
    const tls = createTlsFront(row, deps.tls, config, {
      logger: deps.logger,
      log: stages.log,
      http1,
      toH2: h2.takeFirstRequest,
    });
    stages.watching.push(tls.stopWatching);
    return (socket) => tls.take(socket);
  }
  const h2c = row.protocols.includes('h2c');
  return async (socket, front) => {
    if (h2c && (await sniffHttp2Preface(socket))) await h2.takeFirstRequest(socket, front);
    else http1.take(socket, socket);
    socket.resume();
  };
}

/**
 * node:http2 and node:tls are loaded when first needed: together they cost about
 * 9 MB of resident memory, which a plain HTTP/1.1 deployment should not pay.
 */
function lazyH2Stage(create: () => H2Stage): H2Entry {
  let stage: H2Stage | null = null;
  const take = (socket: Duplex, front: FrontState | undefined) => (stage ??= create()).handOver(socket, front);
  return {
    get stage() {
      return stage;
    },
    take,
    // The first request of an HTTP/2 connection may lack :authority and Host (HAProxy's
    // h2 health check); h2-authority.ts makes nghttp2 let it through to the app.
    takeFirstRequest: async (socket, front) => {
      const taken = await firstRequestSocket(socket);
      if (taken !== socket && front !== undefined) shareFront(front, taken);
      take(taken, front);
    },
  };
}

/** Binds every port in order; if one fails, those already bound are closed. */
async function bindAll(
  fronts: readonly { row: PortRow; server: TcpServer }[],
  reusePort: boolean,
): Promise<BoundPort[]> {
  const bound: BoundPort[] = [];
  try {
    for (const { row, server } of fronts) {
      const address = await bind(server, row.port, row.host, row.name, reusePort);
      bound.push({
        row,
        address,
        url: urlOf(row.protocols.includes('tcp') ? (row.tls ? 'tls' : 'tcp') : row.tls ? 'https' : 'http', address),
      });
    }
  } catch (err) {
    for (const { server } of fronts.slice(0, bound.length)) server.close();
    throw err;
  }
  return bound;
}

const urlOf = (scheme: string, a: AddressInfo) =>
  `${scheme}://${formatHostPort(a.address === '::' || a.address === '0.0.0.0' ? '127.0.0.1' : a.address, a.port)}`;

/** Listen; `::` falls back to 0.0.0.0 on hosts without IPv6. Errors say which listener and port failed. */
function bind(
  server: TcpServer,
  port: number,
  host: string,
  listener: string,
  reusePort: boolean,
): Promise<AddressInfo> {
  const attempt = (h: string) =>
    new Promise<AddressInfo>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      // reusePort needs `exclusive`: in a cluster worker the socket is then its own, not the primary's.
      server.listen(
        { port, host: h, ipv6Only: false, ...(reusePort ? { reusePort: true, exclusive: true } : {}) },
        () => {
          server.off('error', onError);
          resolve(server.address() as AddressInfo);
        },
      );
    });
  return attempt(host)
    .catch((err: NodeJS.ErrnoException) => {
      if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
      throw err;
    })
    .catch((err: unknown) => {
      throw Object.assign(err as Error, { listener, port });
    });
}
