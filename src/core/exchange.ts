// The record of one exchange, whatever protocol carried it: what the access line
// and the metrics say about it. It knows no protocol object (no request, response
// or socket): each protocol keeps those in its own type built on this one. A new
// protocol adds one member to Protocol and, when its end is not an HTTP status or
// a WebSocket close code, one member to Outcome.
import { randomUUID } from 'node:crypto';
import type { ConnectionFacts } from './facts.ts';
import type { TcpEnd } from '../ops/metrics.ts';
import type { HeaderScan } from './request-head.ts';

/** What carried the exchange: the access line's and the metrics' view of it. */
export type Protocol = 'http/1.1' | 'h2' | 'websocket' | 'sse' | 'tcp' | 'grpc';

/**
 * How the exchange ended: the status answered, the close code of a WebSocket that
 * was opened, why an L4 (TCP echo) connection ended, or the status of a gRPC call
 * (0-16, carried in its trailers).
 */
export type Outcome =
  { readonly http: number } | { readonly websocket: number } | { readonly l4: TcpEnd } | { readonly grpc: number };

/** One outcome object per HTTP status, shared: closing an exchange allocates nothing. */
const HTTP_OUTCOMES: { readonly http: number }[] = [];

/** The outcome of an answer with this HTTP status. */
export function httpOutcome(status: number): Outcome {
  return (HTTP_OUTCOMES[status] ??= Object.freeze({ http: status }));
}

/** One outcome object per gRPC status code, shared as the HTTP ones are. */
const GRPC_OUTCOMES: { readonly grpc: number }[] = [];

/** The outcome of a gRPC call that ended with this status code. */
export function grpcOutcome(code: number): Outcome {
  return (GRPC_OUTCOMES[code] ??= Object.freeze({ grpc: code }));
}

/**
 * The HTTP status the metrics and the access line count: a WebSocket that was opened
 * counts as its 101, a gRPC call as the 200 that carries every gRPC status, an L4
 * connection as none (0).
 */
export function statusOf(outcome: Outcome): number {
  return 'http' in outcome ? outcome.http : 'grpc' in outcome ? 200 : 'websocket' in outcome ? 101 : 0;
}

/** What a WebSocket's log line says beyond an HTTP one (its reason, or its traffic). */
export type WebSocketDetail =
  | { reason: string }
  | { aborted: true }
  | { bytesIn: number; messagesIn: number; messagesOut: number; closeCode: number };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's request id when it is sane, else a fresh UUID. */
function requestIdOf(scan: HeaderScan): string {
  return scan.requestId !== undefined && REQUEST_ID.test(scan.requestId) ? scan.requestId : randomUUID();
}

/** One exchange, from arrival to its access-log line. Begun and closed by the Ledger (ledger.ts). */
export class Exchange {
  /** Set when the answer turns out to be an event stream ('sse'). */
  protocol: Protocol;
  readonly facts: ConnectionFacts;
  readonly method: string;
  /** The request target as sent. */
  readonly target: string;
  readonly scan: HeaderScan;
  readonly requestId: string;
  readonly start = performance.now();
  bytesIn = 0;
  bytesOut = 0;
  /** Whether it gets an access-log line (operations requests may not; --no-access-log). */
  logged: boolean;
  /** The client it counts against in --max-in-flight-per-client ('' when there is no share). */
  client = '';
  /** Whether its record is closed (counted and logged): it is, exactly once. */
  closed = false;
  /** How it ended, once closed. */
  outcome: Outcome | null = null;
  /** Whether it was cut short (the peer left, a reset or refused stream), once closed. */
  aborted = false;
  /** The connection fault the client asked for, as the access line names it; null for none. */
  faultLabel: string | null = null;

  constructor(
    protocol: Protocol,
    facts: ConnectionFacts,
    method: string,
    target: string,
    scan: HeaderScan,
    logged: boolean,
  ) {
    this.protocol = protocol;
    this.facts = facts;
    this.method = method;
    this.target = target;
    this.scan = scan;
    this.requestId = requestIdOf(scan);
    this.logged = logged;
  }
}
