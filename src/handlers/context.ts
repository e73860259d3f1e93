// What every part of the HTTP stage shares: the settings, the injected side effects,
// the exchange ledger and the health state. Exchanges are closed by their answer
// port (exchange.ts), never from here.
import type { Config, Env } from '../config/settings.ts';
import { allowedEnv } from '../echo/environment.ts';
import type { Identity } from '../echo/identity.ts';
import type { EchoContext } from '../echo/model.ts';
import { Health } from '../ops/health.ts';
import { limitedLog, type LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { Ledger } from '../core/ledger.ts';
import { clientKey, clientShare } from './client-share.ts';
import { Attempts } from './fail-first.ts';

/** The side effects the app is given, so tests drive exactly the code that runs in production. */
export interface AppDeps {
  logger: Logger;
  metrics: Metrics | null;
  /** [0, 1); the weighted status choice uses it. */
  random: () => number;
  identity: Identity | null;
  env: Env;
}

export interface HttpContext {
  config: Config;
  deps: AppDeps;
  ledger: Ledger;
  health: Health;
  /** Rate-limited warnings about bad requests: a flood of them must not flood the log. */
  log: LimitedLog;
  echoContext: EchoContext;
  /** The fail-first control's attempts by key. */
  attempts: Attempts;
  /**
   * The ports this server listens on, as bound: the configured ones at first, then
   * what the listeners report after listen, so a port 0 is known by the one the
   * system picked (a forward must not call the server itself through it).
   */
  ownPorts: Set<number>;
}

export function createContext(config: Config, deps: AppDeps): HttpContext {
  // Who a request counts against is read from its headers, the HTTP side's to say.
  const ledger = new Ledger(deps.logger, deps.metrics, config, {
    share: clientShare(config),
    keyOf: (rawHeaders, facts) => clientKey(rawHeaders, facts, config),
  });
  return {
    config,
    deps,
    ledger,
    health: new Health(),
    log: limitedLog(deps.logger),
    attempts: new Attempts(config.failFirstKeys, config.failFirstTtlMs),
    ownPorts: configuredPorts(config),
    echoContext: {
      trustedProxies: config.trustedProxies,
      clientIpHeader: config.clientIpHeader,
      identity: config.identity ? deps.identity : null,
      env: allowedEnv(deps.env, config.echoEnv),
    },
  };
}

function configuredPorts(c: Config): Set<number> {
  const ports = [c.port, ...(c.https ? [c.httpsPort] : []), c.metricsPort, c.tcpPort, c.tcpTlsPort, c.udpPort];
  return new Set(ports.filter((p): p is number => typeof p === 'number' && p > 0));
}
