// Liveness and readiness state, independent of each other. Readiness fails the moment
// shutdown begins so load balancers stop sending; the health control sets either for
// failover tests: `unready` fails readiness only (an orchestrator takes the replica out
// of rotation but does not restart it), `fail` fails both (it restarts it), `fail-once`
// fails the next check of each once, `ok` restores both.
import { ParseError, clip } from '../util/parse.ts';

/** What the health control (`echo_health=`) may set. */
export type HealthAction = 'unready' | 'fail' | 'fail-once' | 'sick' | 'ok';

const HEALTH_ACTIONS: readonly HealthAction[] = ['fail', 'fail-once', 'ok', 'sick', 'unready'];

export function parseHealth(text: string): HealthAction {
  const s = text.trim().toLowerCase() as HealthAction;
  if (HEALTH_ACTIONS.includes(s)) return s;
  throw new ParseError(`"${clip(text)}" is not one of ${HEALTH_ACTIONS.join(', ')}`);
}

export class Health {
  #draining = false;
  #liveFail = false;
  #readyFail = false;
  #liveOnce = false;
  #readyOnce = false;
  #sick = false;

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
    this.#sick = action === 'sick';
  }

  /**
   * A sick replica: the echo fails (--sick-answer) while liveness and readiness stay
   * green, so only a front's outlier detection takes it out, not the orchestrator.
   */
  get sick(): boolean {
    return this.#sick;
  }

  /** Liveness: consumes its one-shot failure. */
  checkLive(): boolean {
    if (this.#liveOnce) {
      this.#liveOnce = false;
      return false;
    }
    return !this.#liveFail;
  }

  /** Readiness as it stands, consuming nothing (a gRPC health Watch looks at it again and again). */
  get ready(): boolean {
    return !this.#readyFail && !this.#draining;
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
