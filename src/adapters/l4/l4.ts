// The L4 echoes behind the listener's TCP and UDP echo ports (L4Handlers). TCP
// connections are exchanges in a Ledger of their own: the HTTP stage's Ledger is not
// reachable from here, and a TCP connection is bounded by --max-connections at accept,
// not by the in-flight budget of requests, so this one never refuses (its budget is
// --max-connections) and serves the counts, the access lines and the drain.
import type { Config } from '../../config/settings.ts';
import { Ledger } from '../../core/ledger.ts';
import type { Identity } from '../../echo/identity.ts';
import { limitedLog } from '../../ops/log-limit.ts';
import type { Logger } from '../../ops/logger.ts';
import type { Metrics } from '../../ops/metrics.ts';
import type { L4Handlers } from '../../transport/handlers.ts';
import { createTcpEcho } from './tcp.ts';
import { createUdpEcho } from './udp.ts';

export interface L4Deps {
  logger: Logger;
  metrics: Metrics | null;
  identity: Identity | null;
}

export function createL4(config: Config, deps: L4Deps): L4Handlers & { readonly ledger: Ledger } {
  const ledger = new Ledger(
    deps.logger,
    deps.metrics,
    { accessLog: config.accessLog, maxInFlight: config.maxConnections },
    { share: 0, keyOf: () => '' },
  );
  const identity = config.identity ? deps.identity : null;
  const tcp = createTcpEcho(config, ledger, identity);
  const udp = createUdpEcho(config, {
    metrics: deps.metrics,
    identity,
    log: config.accessLog ? limitedLog(deps.logger) : null,
  });
  return {
    ledger,
    tcp: (socket, facts) => tcp.take(socket, facts),
    datagram: (msg, from, reply) => udp.datagram(msg, from, reply),
    drain: (drainMs) => tcp.drain(drainMs),
  };
}
