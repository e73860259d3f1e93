// A run of calls: each URL `count` times, paced to `qps`, each with its own
// X-Request-Id and a traceparent of the run's trace; then the summary.
import { randomUUID } from 'node:crypto';
import { setTimeout as pause } from 'node:timers/promises';
import { call, type CallOptions, type CallResult, type ConnectionPool } from './call.ts';
import { traceparentFor, type OutboundTrace } from './trace.ts';

export interface RunOptions extends CallOptions {
  count: number;
  /** Calls per second; 0 = one after another, as fast as they answer. */
  qps: number;
  trace: OutboundTrace;
  /** The X-Request-Id every call carries (a caller's own); a new one per call when null. */
  requestId: string | null;
  /** Extra headers forwarded as they came (b3, x-b3-*). */
  forwarded: [string, string][];
  /** A connection per call; by default HTTP/1.1 calls to one target share a keep-alive one. */
  newConnection?: boolean;
}

export interface Summary {
  calls: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  replicas: Record<string, number>;
  latencyMs: { p50: number; p90: number; p99: number; max: number } | null;
}

/** What the summary needs of a call: not its answer, which can be large and --count many. */
export type Outcome = Pick<CallResult, 'ok' | 'status' | 'error' | 'replica' | 'latencyMs'>;

export async function runCalls(
  urls: readonly string[],
  o: RunOptions,
  each: (r: CallResult & { n: number; requestId: string; spanId: string }) => void,
): Promise<Summary> {
  const results: Outcome[] = [];
  const interval = o.qps > 0 ? 1000 / o.qps : 0;
  const start = performance.now();
  let n = 0;
  const pool: ConnectionPool | null = o.newConnection === true ? null : new Map();
  // The run's client went away: no more calls (the one in progress has ended with it).
  const over = () => o.signal?.aborted === true;
  try {
    await callAll(pool);
  } finally {
    for (const agent of pool?.values() ?? []) agent.destroy();
  }
  return summarize(results);

  async function callAll(pool: ConnectionPool | null): Promise<void> {
    for (let i = 0; i < o.count; i++) {
      for (const url of urls) {
        if (interval > 0) {
          const due = start + n * interval - performance.now();
          if (due > 0) await pause(due, undefined, o.signal === undefined ? {} : { signal: o.signal }).catch(() => {});
        }
        if (over()) return;
        n++;
        const requestId = o.requestId ?? randomUUID();
        const { traceparent, spanId } = traceparentFor(o.trace);
        const headers: [string, string][] = [
          ['x-request-id', requestId],
          ['traceparent', traceparent],
          ...o.forwarded,
          ...o.headers,
        ];
        const r = await call(url, { ...o, headers, pool });
        if (over()) return;
        results.push({ ok: r.ok, status: r.status, error: r.error, replica: r.replica, latencyMs: r.latencyMs });
        each({ ...r, n, requestId, spanId });
      }
    }
  }
}

export function summarize(results: readonly Outcome[]): Summary {
  const statuses: Record<string, number> = {};
  const replicas: Record<string, number> = {};
  for (const r of results) {
    const s = r.error ?? String(r.status);
    statuses[s] = (statuses[s] ?? 0) + 1;
    if (r.replica !== null) replicas[r.replica] = (replicas[r.replica] ?? 0) + 1;
  }
  const ok = results.filter((r) => r.ok).length;
  const lat = results.map((r) => r.latencyMs).sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]!;
  return {
    calls: results.length,
    ok,
    failed: results.length - ok,
    statuses,
    replicas,
    latencyMs: lat.length === 0 ? null : { p50: pct(50), p90: pct(90), p99: pct(99), max: lat.at(-1)! },
  };
}
