// What every part of the HTTP stage shares: the settings, the injected side effects,
// the exchange ledger, the health state, and the two ways an HTTP exchange completes.
import type { ServerResponse } from 'node:http';
import type { Config, Env } from '../config/settings.ts';
import { allowedEnv } from '../echo/environment.ts';
import type { Identity } from '../echo/identity.ts';
import type { EchoContext } from '../echo/model.ts';
import { Health } from '../ops/health.ts';
import { limitedLog, type LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { Ledger, type HttpExchange } from './exchange.ts';

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
  /** The exchange is over: its status is the response's (or what the transport answered, or 499). */
  complete(x: HttpExchange, aborted: boolean): void;
  /** For answers that finish later: complete when the response closes, however it ends. */
  completeOnClose(x: HttpExchange): void;
  /** The HTTP/1.1 parser answered this request itself (its body was malformed or cut) with `status`. */
  answeredByTransport(res: ServerResponse, status: number): void;
}

export function createContext(config: Config, deps: AppDeps): HttpContext {
  const ledger = new Ledger(deps.logger, deps.metrics, config);
  /** Requests the transport answered itself: the status it sent. */
  const transportAnswers = new WeakMap<ServerResponse, number>();
  const complete = (x: HttpExchange, aborted: boolean) => {
    const { res } = x;
    // A client that left before any answer was sent is recorded as 499 (nginx's
    // "client closed request"), not as the 200 node:http would report. Looked up
    // only on this rare path: a request the transport answered never ends its response.
    const status = !aborted ? res.statusCode : transportAnswers.get(res) ?? (res.headersSent ? res.statusCode : 499);
    ledger.finish(x, status, aborted);
  };
  return {
    config,
    deps,
    ledger,
    health: new Health(),
    log: limitedLog(deps.logger),
    echoContext: {
      trustedProxies: config.trustedProxies,
      clientIpHeader: config.clientIpHeader,
      identity: config.identity ? deps.identity : null,
      env: allowedEnv(deps.env, config.echoEnv),
    },
    complete,
    completeOnClose(x) {
      // writableEnded too: node:http2's compatibility response reports a reset stream as finished.
      x.res.once('close', () => complete(x, !x.res.writableEnded || !x.res.writableFinished));
    },
    answeredByTransport(res, status) {
      transportAnswers.set(res, status);
    },
  };
}
