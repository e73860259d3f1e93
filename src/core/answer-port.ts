// The answer port: how any handler answers, whatever protocol carries the answer.
// Every protocol implements it (HTTP/1.x over node:http's response in
// adapters/http1/exchange.ts, HTTP/2 on the stream in adapters/http2/exchange.ts, gRPC
// in adapters/grpc/exchange.ts; the WebSocket path in adapters/websocket/upgrade.ts
// answers on the socket);
// handlers write through it and never do bookkeeping. The record of an exchange is
// closed here and nowhere else: when the answer ends, or when the peer goes away.
import type { Exchange, Outcome, WebSocketDetail } from './exchange.ts';
import type { Ledger } from './ledger.ts';

/** How an answer is cut short: reset (it broke), refuse (not processed, safe to retry), cancel (stop sending). */
export type AbortKind = 'reset' | 'refuse' | 'cancel';

/**
 * A connection fault a client asked for (the fault control), as the adapters carry
 * it out: reset (TCP RST; HTTP/2: RST_STREAM with `h2Code`) and close (FIN; HTTP/2:
 * the connection) before any byte, truncate and reset-after once `bytes` of the
 * body are out, goaway (HTTP/2) after the answer.
 */
export interface ConnectionFault {
  readonly kind: 'reset' | 'close' | 'truncate' | 'reset-after' | 'goaway';
  readonly bytes: number;
  readonly h2Code: number;
  /** How the access line names it: `reset:REFUSED_STREAM`, `truncate:4096`. */
  readonly label: string;
}

export interface AnswerPort {
  /** Whether the head is out (a status can no longer be chosen). */
  readonly headersSent: boolean;
  /**
   * The head of an answer whose body follows (`headers` is [name, value, ...]).
   * False when the status carries no body: the answer is then complete already.
   * `streaming`: the body comes in pieces over time, so the head goes out at once.
   */
  head(status: number, headers: readonly (string | number | readonly string[])[], streaming?: boolean): boolean;
  /** A piece of the body; false when the peer is behind: wait for `onDrain` before the next. */
  write(chunk: string | Uint8Array): boolean;
  /** Runs `fn` once the peer has taken what was written (after write returned false). */
  onDrain(fn: () => void): void;
  /** The last piece of the body, if any: the answer is complete. */
  end(chunk?: string | Uint8Array): void;
  /** A 1xx answer ahead of the final one. */
  interim(code: number): void;
  /** Fields after the body, on protocols that carry them. */
  trailers(fields: Readonly<Record<string, string>>): void;
  /** Cuts the answer short; the exchange is closed, as aborted. */
  abort(kind: AbortKind): void;
  /** The answer needs no more of the request body: none is read (the protocol says stop its own way). */
  stopReading(): void;
  /** Runs `fn` if the peer goes away before the answer is complete; returns what forgets it. */
  onPeerGone(fn: () => void): () => void;
}

/**
 * Closes the exchange's record: its count, metrics and access line. The one caller
 * of the ledger's close; each protocol's port calls it when its answer ends (at
 * once, when the handler ended it before returning, so the fast path adds no
 * listener) or when the peer goes away. Only the first close of an exchange counts.
 */
export function closeExchange(
  ledger: Ledger,
  x: Exchange,
  outcome: Outcome,
  aborted: boolean,
  websocket?: WebSocketDetail,
): void {
  ledger.close(x, outcome, aborted, websocket);
}
