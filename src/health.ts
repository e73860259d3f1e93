// Liveness and readiness state, independent of each other. Readiness fails the moment
// shutdown begins so load balancers stop sending; the health control sets either for
// failover tests: `unready` fails readiness only (an orchestrator takes the replica out
// of rotation but does not restart it), `fail` fails both (it restarts it), `fail-once`
// fails the next check of each once, `ok` restores both.
import { controlInput, parseHealth, type HealthAction } from './controls.ts';
import { ParseError } from './parse.ts';
import { scanHeaders } from './request-head.ts';

export class Health {
  #draining = false;
  #liveFail = false;
  #readyFail = false;
  #liveOnce = false;
  #readyOnce = false;

  get draining(): boolean {
    return this.#draining;
  }

  beginDrain(): void {
    this.#draining = true;
  }

  /** Each action replaces the previous state: the last one set is the one in force. */
  apply(action: HealthAction): void {
    this.#liveFail = action === 'fail';
    this.#readyFail = action === 'fail' || action === 'unready';
    this.#liveOnce = action === 'fail-once';
    this.#readyOnce = action === 'fail-once';
  }

  /** Liveness: consumes its one-shot failure. */
  checkLive(): boolean {
    if (this.#liveOnce) {
      this.#liveOnce = false;
      return false;
    }
    return !this.#liveFail;
  }

  /** Readiness: not ready while draining or failed; consumes its one-shot failure. */
  checkReady(): boolean {
    if (this.#readyOnce) {
      this.#readyOnce = false;
      return false;
    }
    return !this.#readyFail && !this.#draining;
  }
}

/**
 * The health control on a request to the liveness or readiness path (`?echo_health=`
 * or `X-Echo-Health`), so the state can be set where only the operations paths are
 * reachable (a port-forward to one pod, a probe-only route). It sets the state and
 * acknowledges without running the check; null when the request carries no such
 * control, and the path answers its check as usual. Gated by --health-control alone.
 */
export function healthControlAnswer(uri: string, rawHeaders: readonly string[], enabled: boolean, health: Health): { status: number; body: string } | null {
  const q = uri.indexOf('?');
  const input = controlInput(uri, q, scanHeaders(rawHeaders, true).controls);
  const entry = input?.get('health');
  if (entry === undefined) return null;
  if (!enabled) return { status: 403, body: 'the health control is disabled on this server (--health-control)\n' };
  try {
    const action = parseHealth(entry.values[0]!);
    health.apply(action);
    return { status: 200, body: `health: ${action}\n` };
  } catch (err) {
    if (err instanceof ParseError) return { status: 400, body: `invalid ${entry.source}: ${err.message}\n` };
    throw err;
  }
}
