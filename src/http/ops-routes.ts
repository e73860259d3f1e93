// The route table: the operations endpoints by exact path (liveness, readiness,
// metrics, version); every other path is the echo's. An operations endpoint is cheap
// and never refused for load: a full in-flight budget must not fail liveness (the
// orchestrator would restart a healthy replica) or hide /metrics.
import { BUILD_INFO } from '../ops/version.ts';
import type { HttpContext } from './context.ts';
import type { HttpExchange } from './exchange.ts';
import { healthControlAnswer } from './health-control.ts';
import { fail } from './refusals.ts';
import { declaredLength, readRequestBody } from './request-body.ts';
import { send, sendText } from './respond.ts';

/** An operations endpoint answers now (returns true) or later (false: it completes on 'close'). */
export type OpsHandler = (x: HttpExchange) => boolean;

export function createOpsRoutes(ctx: HttpContext): Map<string, OpsHandler> {
  const { config, health } = ctx;
  const { metrics, logger } = ctx.deps;
  const routes = new Map<string, OpsHandler>();
  const route = (path: string, handler: OpsHandler) => {
    if (path !== '') routes.set(path, handler); // an empty path turns the endpoint off
  };
  /** `?echo_health=` on a probe path sets the state instead of checking it. */
  const healthControl = (x: HttpExchange): boolean => {
    const answer = healthControlAnswer(x.uri, x.scan.controls, config.healthControl, health);
    if (answer !== null) sendText(x, answer.status, answer.body);
    return answer !== null;
  };

  route(config.livenessPath, (x) => {
    if (healthControl(x)) return true;
    if (health.checkLive()) sendText(x, 200, 'ok\n');
    else sendText(x, 503, 'unhealthy\n');
    return true;
  });
  route(config.readinessPath, (x) => {
    if (healthControl(x)) return true;
    // This probe is in flight itself; a full budget of other work is what counts.
    if (!config.readyWhenSaturated && !health.draining && ctx.ledger.saturated(1)) sendText(x, 503, 'saturated: --max-in-flight reached\n');
    else if (health.checkReady()) sendText(x, 200, 'ready\n');
    else sendText(x, 503, health.draining ? 'draining\n' : 'not ready\n');
    return true;
  });
  if (metrics !== null && config.metricsPort === 0) { // else on its own listener (metrics-listener.ts)
    route(config.metricsPath, (x) => {
      metrics.scrape().then((body) => send(x, 200, metrics.contentType, body), (err: unknown) => {
        logger.error({ err }, 'metrics collection failed');
        sendText(x, 500, 'metrics collection failed\n');
      }).catch((err: unknown) => fail(ctx, x, err));
      return false;
    });
  }
  const version = JSON.stringify(BUILD_INFO) + '\n';
  route(config.versionPath, (x) => {
    send(x, 200, 'application/json; charset=utf-8', version);
    return true;
  });
  return routes;
}

/**
 * Serves an operations endpoint. They take no body, but a client may send one: it
 * is read and discarded within --max-body-size (413 above), like the echo's, first.
 */
export function serveOps(ctx: HttpContext, x: HttpExchange, ops: OpsHandler): void {
  const declared = declaredLength(x);
  if (declared === 0) {
    if (ops(x)) ctx.complete(x, false);
    else ctx.completeOnClose(x);
    return;
  }
  readRequestBody(ctx, x, declared, 0, () => {
    if (ops(x)) ctx.complete(x, false);
  });
}
