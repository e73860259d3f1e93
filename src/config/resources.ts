// What the container lets this server use, read from its cgroup at start-up, and
// the settings sized from it when the operator left them at `auto`:
//   --workers auto       one worker per CPU the cgroup quota (and the CPU affinity) allows;
//   --max-in-flight auto 1000, or fewer so that a full budget fits the memory limit;
//   --max-connections auto 10,000, or fewer so that every connection, with the
//                          fewest HTTP/2 streams a session gets, fits it;
//   --h2-max-streams auto  100, or fewer so that every session's open streams fit
//                          what is left of it;
//   V8's old space       half the memory share of a process, unless the operator
//                        chose one (--max-old-space-size in NODE_OPTIONS or the command).
// cgroup v2 (memory.max, cpu.max) and v1 (memory/memory.limit_in_bytes,
// cpu/cpu.cfs_quota_us) are both read; the root is a parameter so tests can hand
// in a directory laid out like either.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface CgroupLimits {
  /** Bytes, or null when unlimited. */
  memoryBytes: number | null;
  /** CPUs' worth of quota (1.5 for --cpus 1.5), or null when unlimited. */
  cpuQuota: number | null;
}

const MIB = 1024 * 1024;
/** Larger than any real limit: cgroup v1 writes "unlimited" as about 2^63. */
const UNLIMITED = 2 ** 60;

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

export function readCgroupLimits(root = '/sys/fs/cgroup'): CgroupLimits {
  let memoryBytes: number | null = null;
  let cpuQuota: number | null = null;
  const v2mem = readText(`${root}/memory.max`);
  const v1mem = v2mem === null ? readText(`${root}/memory/memory.limit_in_bytes`) : null;
  const mem = v2mem ?? v1mem;
  if (mem !== null && /^\d+$/.test(mem) && Number(mem) < UNLIMITED) memoryBytes = Number(mem);
  const v2cpu = readText(`${root}/cpu.max`);
  if (v2cpu !== null) {
    const [quota, period] = v2cpu.split(/\s+/);
    if (quota !== undefined && /^\d+$/.test(quota) && Number(period) > 0) cpuQuota = Number(quota) / Number(period);
  } else {
    const quota = readText(`${root}/cpu/cpu.cfs_quota_us`);
    const period = readText(`${root}/cpu/cpu.cfs_period_us`);
    if (quota !== null && /^\d+$/.test(quota) && Number(period) > 0) cpuQuota = Number(quota) / Number(period);
  }
  return { memoryBytes, cpuQuota };
}

/** Workers for `--workers auto`: the CPUs this process may run on, capped by the CPU quota (rounded up). */
export function autoWorkers(limits: CgroupLimits, cpus = availableParallelism()): number {
  const byQuota = limits.cpuQuota === null ? cpus : Math.max(1, Math.ceil(limits.cpuQuota - 0.01));
  return Math.max(1, Math.min(cpus, byQuota));
}

/** Kept for one process before any request: the runtime, the bundle and room for the heap to breathe. */
export const PROCESS_RESERVE = 64 * MIB;
/** Budgeted per request in flight: a delayed request holds about 46 KiB, garbage and buffers round it up. */
export const PER_REQUEST = 96 * 1024;
/** A --workers primary holds no requests, but loads the same code: about 60 MB resident. */
export const PRIMARY_RESERVE = 64 * MIB;
export const DEFAULT_IN_FLIGHT = 1000;
const MIN_IN_FLIGHT = 10;
/** Budgeted per open connection: an HTTP/2 session (node:http2 and nghttp2 state, socket buffers) is the costliest; see README. */
export const PER_CONNECTION = 64 * 1024;
export const DEFAULT_CONNECTIONS = 10_000;
const MIN_CONNECTIONS = 100;
/**
 * Budgeted per open HTTP/2 stream, before the in-flight budget admits or refuses it:
 * node:http2's stream, request and response objects. Every session may open
 * --h2-max-streams of them at once, admitted or not, so sessions x streams must fit.
 */
export const PER_STREAM = 6 * 1024;
export const DEFAULT_H2_STREAMS = 100;
const MIN_H2_STREAMS = 10;

export interface Sizing {
  /** The memory share of one serving process, or null with no limit. */
  shareBytes: number | null;
  maxInFlight: number;
  maxConnections: number;
  h2MaxStreams: number;
  /** V8 old-space limit to start a serving process with, in MiB; null: V8's own choice. */
  heapMiB: number | null;
}

/**
 * What `auto` means for one of `workers` serving processes under these limits.
 * `connections`: --max-connections when the operator chose it (0: auto), which the
 * HTTP/2 streams per session are then sized for.
 */
export function sizeFor(limits: CgroupLimits, workers: number, connections = 0): Sizing {
  if (limits.memoryBytes === null)
    return {
      shareBytes: null,
      maxInFlight: DEFAULT_IN_FLIGHT,
      maxConnections: DEFAULT_CONNECTIONS,
      h2MaxStreams: DEFAULT_H2_STREAMS,
      heapMiB: null,
    };
  const share = workers > 1 ? (limits.memoryBytes - PRIMARY_RESERVE) / workers : limits.memoryBytes;
  const maxInFlight = Math.max(
    MIN_IN_FLIGHT,
    Math.min(DEFAULT_IN_FLIGHT, Math.floor((share - PROCESS_RESERVE) / PER_REQUEST)),
  );
  // Sessions and their streams share one budget (counting it once for each would
  // promise the memory twice): connections are sized with room for the fewest
  // streams a session gets, and the streams from what each session has left.
  const room = share - PROCESS_RESERVE;
  const maxConnections = Math.max(
    MIN_CONNECTIONS,
    Math.min(DEFAULT_CONNECTIONS, Math.floor(room / (PER_CONNECTION + MIN_H2_STREAMS * PER_STREAM))),
  );
  const h2MaxStreams = Math.max(
    MIN_H2_STREAMS,
    Math.min(DEFAULT_H2_STREAMS, Math.floor((room / (connections || maxConnections) - PER_CONNECTION) / PER_STREAM)),
  );
  const heapMiB = Math.max(32, Math.floor(share / 2 / MIB));
  return { shareBytes: share, maxInFlight, maxConnections, h2MaxStreams, heapMiB };
}

/** True when the operator chose V8's heap size: then `auto` leaves it alone. */
export function heapChosen(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const chosen = (s: string) => /^--max[-_]old[-_]space[-_]size/.test(s);
  return execArgv.some(chosen) || (nodeOptions ?? '').split(/\s+/).some(chosen);
}

/** The V8 heap this process actually got, in MiB (old space plus young generation). */
export function heapLimitMiB(): number {
  return Math.round(process.getBuiltinModule('node:v8').getHeapStatistics().heap_size_limit / MIB);
}
