// Liveness and readiness state. Readiness fails the moment shutdown begins so load
// balancers stop sending; the health control can fail both for failover tests.
import type { HealthAction } from './controls.ts';

export class Health {
  #draining = false;
  #failSticky = false;
  #failOnce = false;

  get draining(): boolean {
    return this.#draining;
  }

  beginDrain(): void {
    this.#draining = true;
  }

  apply(action: HealthAction): void {
    this.#failSticky = action === 'fail';
    this.#failOnce = action === 'fail-once';
  }

  /** Liveness: consumes a one-shot failure. */
  checkLive(): boolean {
    return this.#check();
  }

  /** Readiness: not ready while draining or failed. */
  checkReady(): boolean {
    const ok = this.#check();
    return ok && !this.#draining;
  }

  #check(): boolean {
    if (this.#failSticky) return false;
    if (this.#failOnce) {
      this.#failOnce = false;
      return false;
    }
    return true;
  }
}
