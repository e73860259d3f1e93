// The route table: the operations endpoints by exact path (liveness, readiness,
// metrics, version); every other path is the echo's. An operations endpoint is cheap
// and never refused for load: a full in-flight budget must not fail liveness (the
// orchestrator would restart a healthy replica) or hide /metrics.
import { BUILD_INFO } from '../ops/version.ts';
import type { HttpContext } from './context.ts';
import type { HandlerExchange } from './exchange.ts';
import { healthControlAnswer } from '../controls/health.ts';
import { fail, reject, rejectLargeBody } from './refusals.ts';
import { declaredLength } from './request-body.ts';
import { send, sendText } from './answer.ts';

/** An operations endpoint: it answers now, or later (metrics); its answer's end closes the exchange. */
export type OpsHandler = (x: HandlerExchange) => void;

export function createOpsRoutes(ctx: HttpContext): Map<string, OpsHandler> {
  const { config, health } = ctx;
  const { metrics, logger } = ctx.deps;
  const routes = new Map<string, OpsHandler>();
  const route = (path: string, handler: OpsHandler) => {
    if (path !== '') routes.set(path, handler); // an empty path turns the endpoint off
  };
  /** `?echo_health=` on a probe path sets the state instead of checking it. */
  const healthControl = (x: HandlerExchange): boolean => {
    const answer = healthControlAnswer(x.target, x.scan.controls, config);
    if (answer === null) return false;
    if (answer.set !== null) health.apply(answer.set);
    sendText(x, answer.status, answer.body);
    return true;
  };

  route(config.livenessPath, (x) => {
    if (healthControl(x)) return;
    if (health.checkLive()) sendText(x, 200, 'ok\n');
    else sendText(x, 503, 'unhealthy\n');
  });
  route(config.readinessPath, (x) => {
    if (healthControl(x)) return;
    // This probe is in flight itself; a full budget of other work is what counts.
    if (!config.readyWhenSaturated && !health.draining && ctx.ledger.saturated(1))
      sendText(x, 503, 'saturated: --max-in-flight reached\n');
    else if (health.checkReady()) sendText(x, 200, 'ready\n');
    else sendText(x, 503, health.draining ? 'draining\n' : 'not ready\n');
  });
  if (metrics !== null && config.metricsPort === 0) {
    // else on its own listener (metrics-listener.ts)
    route(config.metricsPath, (x) => {
      metrics
        .scrape()
        .then(
          (body) => send(x, 200, metrics.contentType, body),
          (err: unknown) => {
            logger.error({ err }, 'metrics collection failed');
            sendText(x, 500, 'metrics collection failed\n');
          },
        )
        .catch((err: unknown) => fail(ctx, x, err));
    });
  }
  // The operator's default controls change every answer: a client can see which are in force.
  const version =
    JSON.stringify(
      config.defaultControls === '' ? BUILD_INFO : { ...BUILD_INFO, defaultControls: config.defaultControls },
    ) + '\n';
  route(config.versionPath, (x) => {
    send(x, 200, 'application/json; charset=utf-8', version);
  });
  return routes;
}

/**
 * Serves the operations endpoints. They are never refused by --max-in-flight (a full
 * budget must not fail liveness), so they have a small budget of their own,
 * --max-ops-in-flight: otherwise a flood of them would hold memory without bound.
 * They take no body, and none is ever waited for: one declared over --max-body-size
 * is refused (413); for any other the answer goes at once (HTTP/2 then ends the
 * stream, HTTP/1.1 drops the body as it arrives, within limits), so a body that
 * never comes, or never ends, holds neither the exchange nor its memory.
 */
export function createOpsServer(ctx: HttpContext): (x: HandlerExchange, ops: OpsHandler) => void {
  const { config } = ctx;
  let inFlight = 0;
  return (x, ops) => {
    if (inFlight >= config.maxOpsInFlight) {
      refuseOps(ctx, x);
      return;
    }
    inFlight++;
    // Released when the exchange closes, however it ends, and at the latest after
    // --headers-timeout: an operations answer is immediate, and under a flood
    // node:http2 can leave a stream of a session that went away unclosed, which
    // must not keep its place for ever.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      inFlight--;
    };
    const timer = setTimeout(release, config.headersTimeoutMs).unref();
    x.onClose(release);
    const declared = declaredLength(x);
    if (declared > config.maxBodySize) {
      rejectLargeBody(ctx, x);
      return;
    }
    if (declared !== 0) {
      x.dropBody(config.maxBodySize, Math.max(0, config.headersTimeoutMs - (performance.now() - x.start)), (reason) => {
        ctx.log('warn', { peer: x.facts.peerAddress, reason }, 'connection closed: operations request body not needed');
      });
    }
    ops(x);
  };
}

/** Over --max-ops-in-flight: refused so the client may retry (HTTP/2's REFUSED_STREAM), else 503; logged (rate-limited) and counted once. */
function refuseOps(ctx: HttpContext, x: HandlerExchange): void {
  const limit = ctx.config.maxOpsInFlight;
  ctx.ledger.refused();
  ctx.log('warn', { peer: x.facts.peerAddress, limit }, 'operations request refused: --max-ops-in-flight reached');
  if (x.refusable) {
    x.abort('refuse');
    return;
  }
  reject(x, 503, `server busy: --max-ops-in-flight (${limit}) operations requests in progress`, ['Retry-After', '1']);
}
