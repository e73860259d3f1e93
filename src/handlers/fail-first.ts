// The fail-first control's memory: attempts counted per key, so "fail the first N,
// then succeed" can be asserted exactly through a retrying front. Bounded: at most
// --fail-first-keys keys, each for --fail-first-ttl from its first attempt; over the
// cap the oldest key is forgotten. Per replica: a fleet behind a balancer counts
// each replica's attempts apart.
import type { Controls } from '../controls/table.ts';

interface Count {
  n: number;
  expires: number;
}

export class Attempts {
  /** In the order keys were first seen, which with one TTL is also the order they expire in. */
  readonly #counts = new Map<string, Count>();
  readonly #cap: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(cap: number, ttlMs: number, now: () => number = () => performance.now()) {
    this.#cap = cap;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get size(): number {
    return this.#counts.size;
  }

  /** This attempt's number for `key`, from 1. */
  next(key: string): number {
    const now = this.#now();
    const known = this.#counts.get(key);
    if (known !== undefined && known.expires > now) return ++known.n;
    if (known !== undefined) this.#counts.delete(key);
    for (const [k, c] of this.#counts) {
      if (c.expires > now && this.#counts.size < this.#cap) break;
      this.#counts.delete(k);
    }
    this.#counts.set(key, { n: 1, expires: now + this.#ttlMs });
    return 1;
  }
}

/**
 * The controls this attempt gets: as asked while it is one of the first N for its
 * key, else without the failure controls (status, fault, delay). `target` is the key
 * when the request names none.
 */
export function attemptControls<C extends Controls>(attempts: Attempts, controls: C, target: string): C {
  if (controls.failFirst === null) return controls;
  if (attempts.next(controls.key ?? target) <= controls.failFirst) return controls;
  return { ...controls, status: null, fault: null, delayMs: 0 };
}
