// Incoming trace context, parsed from the headers a tracer or mesh sets: W3C
// `traceparent`, B3 single (`b3`) and B3 multi (`x-b3-*`). Each is validated to its
// exact grammar and bounded length; anything malformed is absent (null), never shown
// half-parsed, so the echo states only ids a tracer would itself accept.

export interface TraceContext {
  /** 32 lower-case hex digits (a 64-bit B3 id is shown as sent, 16 digits). */
  traceId: string;
  /** The caller's span: the parent of whatever this hop does. */
  parentId: string;
  /** null when the caller left the decision open (B3 without a sampling flag). */
  sampled: boolean | null;
  /** Which header it came from. */
  source: 'traceparent' | 'b3' | 'x-b3';
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const HEX16_OR_32 = /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO = /^0+$/;
/** Longer than any valid header of these: not even looked at. */
const MAX_LENGTH = 256;

/** W3C Trace Context, level 1: version 00 has exactly four fields; ff is invalid; all-zero ids are invalid. */
export function parseTraceparent(value: string): TraceContext | null {
  if (value.length > MAX_LENGTH) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (m === null) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (ZERO.test(traceId) || ZERO.test(parentId)) return null;
  return { traceId, parentId, sampled: (parseInt(flags, 16) & 1) === 1, source: 'traceparent' };
}

/** B3 single header: `{traceId}-{spanId}[-{sampling}[-{parentSpanId}]]`; `0`, `1` or `d` alone carries no ids. */
export function parseB3(value: string): TraceContext | null {
  if (value.length > MAX_LENGTH) return null;
  const parts = value.trim().split('-');
  if (parts.length < 2 || parts.length > 4) return null;
  const [traceId = '', spanId = '', sampling, parent] = parts;
  if (!HEX16_OR_32.test(traceId) || !HEX16.test(spanId) || ZERO.test(traceId) || ZERO.test(spanId)) return null;
  if (sampling !== undefined && !['0', '1', 'd'].includes(sampling)) return null;
  if (parent !== undefined && !HEX16.test(parent)) return null;
  return { traceId, parentId: spanId, sampled: sampling === undefined ? null : sampling !== '0', source: 'b3' };
}

/** B3 multi: X-B3-TraceId and X-B3-SpanId, with X-B3-Sampled (1, 0, true, false) or X-B3-Flags: 1 (debug). */
export function parseB3Multi(
  traceId: string | undefined,
  spanId: string | undefined,
  sampled: string | undefined,
  flags: string | undefined,
): TraceContext | null {
  if (traceId === undefined || spanId === undefined) return null;
  const t = traceId.trim().toLowerCase();
  const s = spanId.trim().toLowerCase();
  if (!HEX16_OR_32.test(t) || !HEX16.test(s) || ZERO.test(t) || ZERO.test(s)) return null;
  let decided: boolean | null = null;
  if (flags?.trim() === '1') decided = true;
  else if (sampled !== undefined) {
    const v = sampled.trim().toLowerCase();
    if (v === '1' || v === 'true') decided = true;
    else if (v === '0' || v === 'false') decided = false;
    else return null;
  }
  return { traceId: t, parentId: s, sampled: decided, source: 'x-b3' };
}

/**
 * The trace context of a request from its raw headers ([name, value, ...]): traceparent
 * first, then b3, then x-b3-*. A header sent twice is ambiguous, so it counts as malformed.
 */
export function traceOf(rawHeaders: readonly string[]): TraceContext | null {
  // Each: undefined while not seen, the value once seen, null when seen twice. Locals,
  // not a table: the common request has none of these, and then nothing is allocated.
  let traceparent: string | null | undefined;
  let b3: string | null | undefined;
  let traceId: string | null | undefined;
  let spanId: string | null | undefined;
  let sampled: string | null | undefined;
  let flags: string | null | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    // Cheap first test: only names starting with t, b or x can be one of these.
    const c = name.charCodeAt(0) | 0x20;
    if (c !== 0x74 && c !== 0x62 && c !== 0x78) continue;
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (lower === 'traceparent') traceparent = traceparent === undefined ? value : null;
    else if (lower === 'b3') b3 = b3 === undefined ? value : null;
    else if (lower === 'x-b3-traceid') traceId = traceId === undefined ? value : null;
    else if (lower === 'x-b3-spanid') spanId = spanId === undefined ? value : null;
    else if (lower === 'x-b3-sampled') sampled = sampled === undefined ? value : null;
    else if (lower === 'x-b3-flags') flags = flags === undefined ? value : null;
  }
  if (traceparent != null) return parseTraceparent(traceparent);
  if (traceparent === null) return null;
  if (b3 != null) return parseB3(b3);
  if (b3 === null) return null;
  if (traceId === null || spanId === null || sampled === null || flags === null) return null;
  return parseB3Multi(traceId, spanId, sampled, flags);
}
