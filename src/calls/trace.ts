// The trace context an outbound call carries: the caller's trace id (or a new trace),
// a new span id per call, as a W3C traceparent.
import { randomBytes } from 'node:crypto';
import type { TraceContext } from '../echo/trace.ts';

export interface OutboundTrace {
  traceId: string;
  sampled: boolean;
}

/** The trace calls continue: the incoming one (a 64-bit B3 id padded to 128 bits, as W3C asks), else a new one. */
export function continueTrace(incoming: TraceContext | null): OutboundTrace {
  if (incoming === null) return { traceId: randomBytes(16).toString('hex'), sampled: true };
  return { traceId: incoming.traceId.padStart(32, '0'), sampled: incoming.sampled ?? true };
}

/** A traceparent for one call: the trace's id, a span id of its own. */
export function traceparentFor(trace: OutboundTrace): { traceparent: string; spanId: string } {
  const spanId = randomBytes(8).toString('hex');
  return { traceparent: `00-${trace.traceId}-${spanId}-${trace.sampled ? '01' : '00'}`, spanId };
}
