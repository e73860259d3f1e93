// An HTTP/1.x exchange over node:http's objects (HTTP/2 streams are answered in
// adapters/http2/exchange.ts and adapters/grpc/exchange.ts): the protocol-neutral
// record (core/exchange.ts) with node:http's request and response, and the answer
// port over that response. The port closes the record, and nothing else does: at
// once when the answer ends while the handler runs (the fast path: no listener,
// nothing allocated), else when the response closes, however it ends; an abort
// closes it as aborted.
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import { closeExchange, type AbortKind, type ConnectionFault } from '../../core/answer-port.ts';
import { BodyCut } from '../../core/body-cut.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { Exchange, httpOutcome } from '../../core/exchange.ts';
import type { Ledger } from '../../core/ledger.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import type { BodyResult, RequestInfo } from '../../echo/model.ts';
import type { HandlerExchange } from '../../handlers/exchange.ts';
import { requestInfo } from './request-info.ts';

const EMPTY = new Uint8Array(0);

/** Requests the transport answered itself (their body was malformed or cut): the status it sent. */
const transportAnswers = new WeakMap<ServerResponse, number>();

/** The HTTP/1.1 parser answered this request itself with `status`: its record says so. */
export function answeredByTransport(res: ServerResponse, status: number): void {
  transportAnswers.set(res, status);
}

/**
 * An answer written whole on a raw socket node:http does not own (a refused
 * CONNECT): nothing follows it, so its record closes now.
 */
export function answeredOnSocket(ledger: Ledger, x: Exchange, status: number, bodyBytes: number): void {
  x.bytesOut = bodyBytes;
  closeExchange(ledger, x, httpOutcome(status), false);
}

/**
 * The answer does not need the rest of the request body, so none of it is read: the
 * connection closes after the answer (node:http would otherwise read and discard the
 * body to keep the connection).
 */
export function stopReadingRequest(req: IncomingMessage, res: ServerResponse): void {
  req.pause();
  res.shouldKeepAlive = false;
}

/** 204 and 304 carry no body: HTTP/1.1 would drop one silently, HTTP/2 resets the stream. */
export function isBodiless(status: number): boolean {
  return status === 204 || status === 304;
}

/** The head of a bodiless answer: without Content-Length or Content-Type. */
export function bodilessHeaders(headers: readonly OutgoingHttpHeader[]): OutgoingHttpHeader[] {
  const kept: OutgoingHttpHeader[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'Content-Length' && headers[i] !== 'Content-Type') kept.push(headers[i]!, headers[i + 1]!);
  }
  return kept;
}

export class HttpExchange extends Exchange implements HandlerExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly #ledger: Ledger;
  /** Set when the handler returned before the answer ended: the record then closes with the response. */
  #watching = false;
  /** A fault that cuts the body (truncate, reset-after), with the count of what it let through. */
  #cut: BodyCut | null = null;

  constructor(
    ledger: Ledger,
    req: IncomingMessage,
    res: ServerResponse,
    facts: ConnectionFacts,
    scan: HeaderScan,
    logged: boolean,
  ) {
    super('http/1.1', facts, req.method ?? 'OTHER', req.url ?? '/', scan, logged);
    this.req = req;
    this.res = res;
    this.#ledger = ledger;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  head(status: number, headers: readonly OutgoingHttpHeader[], streaming = false): boolean {
    if (isBodiless(status)) {
      this.res.writeHead(status, bodilessHeaders(headers) as string[]);
      this.end();
      return false;
    }
    this.res.writeHead(status, headers as string[]);
    // A streamed body's head goes out now, as a string: node:http would put it in
    // front of an interim response still queued behind a pipelined request when the
    // first body write is a Buffer, and the 1xx would land inside the body.
    if (streaming) this.res.flushHeaders();
    return true;
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.#cut !== null) return this.#writeCut(chunk, false);
    return this.res.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }

  end(chunk?: string | Uint8Array): void {
    if (this.#cut !== null) {
      this.#writeCut(chunk ?? EMPTY, true);
      return;
    }
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
    if (this.#watching) return;
    // Closed at end(), unlike HTTP/2's (adapters/http2/exchange.ts): what an
    // unread answer holds is bounded by the socket buffer and the connection.
    closeExchange(this.#ledger, this, httpOutcome(this.res.statusCode), false);
  }

  /**
   * node:http has a method per code. RFC 9110, section 15.2: no 1xx to an HTTP/1.0
   * client (the final answer still comes).
   */
  interim(code: number): void {
    const { req, res } = this;
    if (req.httpVersion === '1.0') return;
    if (code === 100) res.writeContinue();
    else if (code === 102) res.writeProcessing();
    // node:http sends a 103 only with a Link hint; a preconnect to this same origin
    // is the one hint that changes nothing for a browser (it is connected already).
    else res.writeEarlyHints({ link: '</>; rel=preconnect' });
  }

  trailers(fields: Readonly<Record<string, string>>): void {
    this.res.addTrailers(fields);
  }

  /**
   * The connection is dropped, whatever the kind: HTTP/1.1 has no REFUSED_STREAM or
   * CANCEL (refusable is false, so a refusal is answered 503 instead).
   */
  abort(_kind: AbortKind): void {
    this.res.destroy();
    closeExchange(this.#ledger, this, httpOutcome(this.#abortedStatus()), true);
  }

  stopReading(): void {
    stopReadingRequest(this.req, this.res);
  }

  /**
   * reset is a TCP RST (SO_LINGER 0), close a FIN, both before any byte; truncate
   * and reset-after send the head and that many body bytes first; goaway has nothing
   * to do over HTTP/1.1: the answer goes as asked.
   */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    switch (f.kind) {
      case 'reset':
        this.req.socket.resetAndDestroy();
        this.#faulted();
        return true;
      case 'close':
        this.req.socket.destroySoon();
        this.#faulted();
        return true;
      case 'goaway':
        return false;
      case 'truncate':
      case 'reset-after':
        this.#cut = new BodyCut(f);
        return false;
    }
  }

  /** A write under a cutting fault: passed on until its bytes are out, then the cut. */
  #writeCut(chunk: string | Uint8Array, last: boolean): boolean {
    const c = this.#cut!;
    const piece = c.take(chunk, last);
    if (piece === null) return false;
    if (!c.done) return this.res.write(piece);
    this.bytesOut = c.sent;
    const { req, res } = this;
    const cut = () => {
      if (c.fault.kind === 'reset-after') req.socket.resetAndDestroy();
      else req.socket.destroySoon();
    };
    if (piece.length > 0) res.write(piece, cut);
    else {
      res.flushHeaders();
      setImmediate(cut);
    }
    this.#faulted();
    return false;
  }

  /** A fault ended the exchange: aborted, with the status sent (0 when nothing was). */
  #faulted(): void {
    closeExchange(this.#ledger, this, httpOutcome(this.res.headersSent ? this.res.statusCode : 0), true);
  }

  /** HTTP/1.x declares its body (Content-Length or chunked): none follows undeclared. */
  get bodyMayFollow(): boolean {
    return false;
  }

  get body(): IncomingMessage {
    return this.req;
  }

  /** HTTP/1.1 has no REFUSED_STREAM: a refusal is answered 503. */
  get refusable(): boolean {
    return false;
  }

  requestInfo(declared: number, body: BodyResult): RequestInfo {
    return requestInfo(this.req, this.facts, this.target, declared, body, this.requestId);
  }

  /** Nothing to set: node:http holds HTTP/1.1 to --request-timeout itself. */
  bodyDeadline(_ms: number, _expired: () => void): void {}

  /**
   * The body is read and dropped as it arrives, so the connection can carry the next
   * request, but only up to `maxBytes` and for `ms`; past either the connection is
   * closed.
   */
  dropBody(maxBytes: number, ms: number, cut: (reason: string) => void): void {
    const { req } = this;
    let bytes = 0;
    const close = (reason: string) => {
      clearTimeout(timer);
      cut(reason);
      req.socket.destroy();
    };
    const timer = setTimeout(() => close('not received within --headers-timeout'), ms);
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) close('over --max-body-size');
    });
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
  }

  onClose(fn: () => void): void {
    this.res.once('close', fn);
  }

  onPeerGone(fn: () => void): () => void {
    const { res } = this;
    const gone = () => {
      if (!res.writableFinished) fn();
    };
    res.once('close', gone);
    return () => res.off('close', gone);
  }

  /**
   * The handler returned. An answer still under way (a body being read, a delay, a
   * stream, a generated body) closes the record when the response closes, however
   * it ends: as aborted if it did not end complete.
   */
  handlerReturned(): void {
    if (this.closed || this.#watching) return;
    this.#watching = true;
    this.res.once('close', () => {
      const aborted = !this.res.writableFinished;
      closeExchange(this.#ledger, this, httpOutcome(aborted ? this.#abortedStatus() : this.res.statusCode), aborted);
    });
  }

  /**
   * A client that left before any answer was sent is recorded as 499 (nginx's
   * "client closed request"), not as the 200 node:http would report; a request the
   * transport answered, with the status it sent (it never ends its response).
   */
  #abortedStatus(): number {
    const { res } = this;
    return transportAnswers.get(res) ?? (res.headersSent ? res.statusCode : 499);
  }
}
