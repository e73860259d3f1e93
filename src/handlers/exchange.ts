// What a handler is given: the exchange's record (core/exchange.ts) and its answer
// port (core/answer-port.ts), plus the request's side in protocol-neutral terms.
// Each adapter implements it over its own objects (HTTP's over node:http's request
// and response, in adapters/http1/exchange.ts); handlers never see those objects,
// so they are written once, for every protocol that carries them.
import type { Readable } from 'node:stream';
import type { AnswerPort, ConnectionFault } from '../core/answer-port.ts';
import type { Exchange } from '../core/exchange.ts';
import type { BodyResult, RequestInfo } from '../echo/model.ts';

export interface HandlerExchange extends Exchange, AnswerPort {
  /** Whether a body may follow though no header declares one (an HTTP/2 stream left open after its headers). */
  readonly bodyMayFollow: boolean;
  /** The request body as it arrives. */
  readonly body: Readable;
  /** Whether `abort('refuse')` tells the client it may retry elsewhere (else a refusal is an answer). */
  readonly refusable: boolean;
  /** The echo model's input: this request, its body as read, and its connection's facts. */
  requestInfo(declared: number, body: BodyResult): RequestInfo;
  /**
   * Calls `expired` if the body has not all arrived within `ms`, where the protocol's
   * own parser does not hold it to --request-timeout already (HTTP/1.1's does).
   */
  bodyDeadline(ms: number, expired: () => void): void;
  /**
   * The answer needs none of the body: it is not kept. Where the connection must be
   * read to carry the next request (HTTP/1.1) it is read and dropped, up to
   * `maxBytes` and for `ms`, past which `cut` is called and the connection closed.
   */
  dropBody(maxBytes: number, ms: number, cut: (reason: string) => void): void;
  /**
   * Carries out a connection fault. Before any byte (reset, close) the exchange is
   * over when this returns, and it returns true; otherwise the answer that follows
   * is cut (truncate, reset-after) or the connection closed after it (goaway). The
   * record names it.
   */
  fault(f: ConnectionFault): boolean;
  /** Runs `fn` once the exchange is over, however it ended. */
  onClose(fn: () => void): void;
}
