// An HTTP exchange over node:http's objects (HTTP/1.x; HTTP/2 streams are answered
// in adapters/http2/exchange.ts and adapters/grpc/exchange.ts): the protocol-neutral
// record (core/exchange.ts) with node:http's request and response, and the answer
// port over that response. The port closes the record,
// and nothing else does: at once when the answer ends while the handler runs (the
// fast path: no listener, nothing allocated), else when the response closes,
// however it ends; an abort closes it as aborted. HTTP/2's own ways (interim
// HEADERS, REFUSED_STREAM, CANCEL) are asked of adapters/http2/.
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import { closeExchange, type AbortKind, type ConnectionFault } from '../../core/answer-port.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { Exchange, httpOutcome } from '../../core/exchange.ts';
import type { Ledger } from '../../core/ledger.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import type { BodyResult, RequestInfo } from '../../echo/model.ts';
import type { HandlerExchange } from '../../handlers/exchange.ts';
import { requestInfo } from './request-info.ts';
import {
  cancelStream,
  closeSession,
  destroySession,
  interimOnStream,
  isHttp2,
  mayHaveBody,
  refuseStream,
  resetStream,
  stopReading,
} from '../http2/stream.ts';

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
  /** A fault that cuts the body (truncate, reset-after): the bytes written so far, and whether the cut is done. */
  #cut: ConnectionFault | null = null;
  #cutSent = 0;
  #cutDone = false;

  constructor(
    ledger: Ledger,
    req: IncomingMessage,
    res: ServerResponse,
    facts: ConnectionFacts,
    scan: HeaderScan,
    logged: boolean,
  ) {
    super(isHttp2(req) ? 'h2' : 'http/1.1', facts, req.method ?? 'OTHER', req.url ?? '/', scan, logged);
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
    // An HTTP/2 answer is not gone at end(): node:http2 holds it, whole, until the
    // peer's flow-control window lets it out, which a peer that never reads never
    // does. Its exchange stays counted (in flight, against its client's share) until
    // the stream closes, sent or reset, so the in-flight budget bounds what stalled
    // answers hold. HTTP/1.1 is bounded by its socket buffer and the connection.
    if (isHttp2(this.req)) this.handlerReturned();
    else closeExchange(this.#ledger, this, httpOutcome(this.res.statusCode), false);
  }

  /**
   * node:http has a method per code; HTTP/2 sends the informational HEADERS frame
   * on the stream. RFC 9110, section 15.2: no 1xx to an HTTP/1.0 client (the final
   * answer still comes).
   */
  interim(code: number): void {
    const { req, res } = this;
    if (req.httpVersion === '1.0') return;
    if (interimOnStream(res, code)) return;
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
   * reset: the connection (HTTP/2: the stream) is dropped. refuse: HTTP/2's
   * REFUSED_STREAM, so the client may retry elsewhere (HTTP/1.1 has none: dropped).
   * cancel: HTTP/2's CANCEL (HTTP/1.1: dropped).
   */
  abort(kind: AbortKind): void {
    const { res } = this;
    if (kind === 'refuse' && isHttp2(this.req)) {
      res.statusCode = 503;
      refuseStream(res);
    } else if (kind === 'cancel' && isHttp2(this.req)) {
      cancelStream(res);
    } else {
      res.destroy();
    }
    closeExchange(this.#ledger, this, httpOutcome(this.#abortedStatus()), true);
  }

  stopReading(): void {
    stopReading(this.req, this.res);
  }

  /**
   * HTTP/1.1: reset is a TCP RST (SO_LINGER 0), close a FIN, both before any byte;
   * truncate and reset-after send the head and that many body bytes first. HTTP/2:
   * reset is the stream's RST_STREAM with the fault's code and the session lives on;
   * close drops the connection; truncate and reset-after end in RST_STREAM too (a
   * stream cannot end short of its Content-Length); goaway sends GOAWAY at once, so
   * this answer completes and the next request needs a new connection.
   */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    const h2 = isHttp2(this.req);
    switch (f.kind) {
      case 'reset':
        if (h2) resetStream(this.res, f.h2Code);
        else this.req.socket.resetAndDestroy();
        this.#faulted();
        return true;
      case 'close':
        if (h2) destroySession(this.res);
        else this.req.socket.destroySoon();
        this.#faulted();
        return true;
      case 'goaway':
        if (h2) closeSession(this.res);
        return false;
      case 'truncate':
      case 'reset-after':
        this.#cut = f;
        return false;
    }
  }

  /** A write under a cutting fault: passed on until its bytes are out, then the cut. */
  #writeCut(chunk: string | Uint8Array, last: boolean): boolean {
    if (this.#cutDone) return false;
    const f = this.#cut!;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const room = f.bytes - this.#cutSent;
    if (bytes.length < room && !last) {
      this.#cutSent += bytes.length;
      return this.res.write(bytes);
    }
    // A body no longer than the fault's size goes whole, then the cut all the same.
    const piece = bytes.subarray(0, Math.min(room, bytes.length));
    this.#cutSent += piece.length;
    this.#cutDone = true;
    this.bytesOut = this.#cutSent;
    const { req, res } = this;
    const cut = () => {
      if (isHttp2(req)) resetStream(res, f.h2Code);
      else if (f.kind === 'reset-after') req.socket.resetAndDestroy();
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

  get bodyMayFollow(): boolean {
    return mayHaveBody(this.req);
  }

  get body(): IncomingMessage {
    return this.req;
  }

  get refusable(): boolean {
    return isHttp2(this.req);
  }

  requestInfo(declared: number, body: BodyResult): RequestInfo {
    return requestInfo(this.req, this.facts, this.target, declared, body, this.requestId);
  }

  /** node:http holds HTTP/1.1 to --request-timeout itself; an HTTP/2 body that trickles would otherwise hold its stream as long as the session lives. */
  bodyDeadline(ms: number, expired: () => void): void {
    if (!isHttp2(this.req)) return;
    const { req, res } = this;
    const timer = setTimeout(() => {
      if (!req.complete) expired();
    }, ms);
    const clear = () => clearTimeout(timer);
    req.once('end', clear);
    res.once('close', clear);
  }

  /**
   * HTTP/2 ends the stream after the answer (stopReading). HTTP/1.1 reads the body
   * and drops it as it arrives, so the connection can carry the next request, but
   * only up to `maxBytes` and for `ms`; past either the connection is closed.
   */
  dropBody(maxBytes: number, ms: number, cut: (reason: string) => void): void {
    if (isHttp2(this.req)) {
      this.stopReading();
      return;
    }
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
      // writableEnded too: node:http2's compatibility response reports a reset stream as finished.
      if (!res.writableEnded || !res.writableFinished) fn();
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
    // writableEnded too: node:http2's compatibility response reports a reset stream as finished.
    this.res.once('close', () => {
      const aborted = !this.res.writableEnded || !this.res.writableFinished;
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
