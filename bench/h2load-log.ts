// h2load's per-request log (`--log-file`): one line per request, tab-separated, the
// request's duration in µs in the third column. Read once into quantiles, then removed.
import { readFileSync, rmSync } from 'node:fs';

/** The log's durations, sorted; `at(q)` is the q-quantile in ms (0 with no request). */
export function requestQuantiles(log: string): (q: number) => number {
  const us = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  rmSync(log, { force: true });
  return (q) => (us.length === 0 ? 0 : us[Math.min(us.length - 1, Math.floor(us.length * q))]! / 1000);
}
