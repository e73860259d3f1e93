// An HTTP/2 exchange answered on node:http2's stream API: the protocol-neutral
// record (core/exchange.ts) and the answer port over the stream itself, with none
// of the compatibility layer's request and response objects (a Readable and a
// Writable per stream, a dozen listeners, a header object rebuilt on every answer),
// which cost more CPU per request than everything echo-server does for it. The
// handlers see the same HandlerExchange as over HTTP/1.1. The port closes the
// record, and nothing else does: when the stream closes after the answer ended
// (an HTTP/2 answer is not gone at end(): see end()), or at once on an abort.
import type { OutgoingHttpHeader } from 'node:http';
import type { Http2Session, ServerHttp2Stream } from 'node:http2';
import { closeExchange, type AbortKind, type ConnectionFault } from '../../core/answer-port.ts';
import { BodyCut } from '../../core/body-cut.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { Exchange, httpOutcome } from '../../core/exchange.ts';
import type { Ledger } from '../../core/ledger.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import type { BodyResult, RequestInfo } from '../../echo/model.ts';
import type { HandlerExchange } from '../../handlers/exchange.ts';
import { requestInfo } from '../http1/request-info.ts';
import { bodilessHeaders, isBodiless } from '../http1/exchange.ts';
import { cancelNow, closeSessionOf, destroySessionOf, refuseNow, resetNow, stopReadingStream } from './stream.ts';

const EMPTY = new Uint8Array(0);
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });
const NGHTTP2_NO_ERROR = 0;

export class H2Exchange extends Exchange implements HandlerExchange {
  readonly stream: ServerHttp2Stream;
  /** The request's header list as node:http2 decoded it: [name, value, ...], pseudo-headers first. */
  readonly rawHeaders: string[];
  readonly httpVersion = '2.0';
  readonly #ledger: Ledger;
  /** The stream's session, kept: node:http2 forgets it when the stream closes. */
  readonly #session: Http2Session | undefined;
  /** The status answered (200 until a head says otherwise, as node's responses default to). */
  #status = 200;
  /** Set when the handler returned before the stream closed: the record then closes with the stream. */
  #watching = false;
  /** Whether the answer was ended through this port (end()). */
  #ended = false;
  #trailers: Readonly<Record<string, string>> | null = null;
  /** A fault that cuts the body (truncate, reset-after), with the count of what it let through. */
  #cut: BodyCut | null = null;

  constructor(
    ledger: Ledger,
    stream: ServerHttp2Stream,
    method: string,
    target: string,
    rawHeaders: string[],
    facts: ConnectionFacts,
    scan: HeaderScan,
    logged: boolean,
  ) {
    super('h2', facts, method, target, scan, logged);
    this.stream = stream;
    this.rawHeaders = rawHeaders;
    this.#ledger = ledger;
    this.#session = stream.session;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  head(status: number, headers: readonly OutgoingHttpHeader[], streaming = false): boolean {
    this.#status = status;
    const bodiless = isBodiless(status);
    // node:http2 takes the head as a flat [name, value, ...] list, lower-casing the
    // names itself; a fresh array, as it adds :status and date to it. A HEAD, 204 or
    // 304 answer ends the stream with its head.
    const fields: OutgoingHttpHeader[] = [':status', status];
    const list = bodiless ? bodilessHeaders(headers) : headers;
    for (let i = 0; i < list.length; i++) fields.push(list[i]!);
    this.#respond(fields, streaming);
    if (bodiless) {
      this.end();
      return false;
    }
    return true;
  }

  /**
   * Sends the head, unless the stream is gone (as the compatibility response does).
   * An answer that may be cut short after its head (a body in pieces, a cutting
   * fault) or has trailers keeps its END_STREAM for a trailing frame: a stream closed
   * mid-answer (RST_STREAM) ends its writable side first, and node:http2 would flag
   * END_STREAM on the data still queued, so the client would see a complete answer
   * shorter than its Content-Length (a PROTOCOL_ERROR) instead of the reset. Without
   * a 'wantTrailers' listener node:http2 sends an empty trailing frame itself.
   */
  #respond(fields: OutgoingHttpHeader[] | Record<string, number>, streaming: boolean): void {
    const { stream } = this;
    if (stream.destroyed || stream.closed) return;
    const open = streaming || this.#cut !== null || this.#trailers !== null;
    stream.respond(fields as string[], open ? WAIT_FOR_TRAILERS : undefined);
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.#cut !== null) return this.#writeCut(chunk, false);
    this.#headIfNone();
    return this.stream.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.stream.once('drain', fn);
  }

  end(chunk?: string | Uint8Array): void {
    if (this.#cut !== null) {
      this.#writeCut(chunk ?? EMPTY, true);
      return;
    }
    this.#ended = true;
    this.#headIfNone();
    const { stream } = this;
    // A HEAD, 204 or 304 answer's stream was ended by its head; a stream that is gone takes nothing.
    if (!stream.writableEnded && !stream.destroyed) {
      if (chunk === undefined) stream.end();
      else stream.end(chunk);
    }
    // An HTTP/2 answer is not gone at end(): node:http2 holds it, whole, until the
    // peer's flow-control window lets it out, which a peer that never reads never
    // does. Its exchange stays counted (in flight, against its client's share) until
    // the stream closes, sent or reset, so the in-flight budget bounds what stalled
    // answers hold.
    this.handlerReturned();
  }

  /** An answer ended or written without a head: 200 and no fields, as node's responses do. */
  #headIfNone(): void {
    if (!this.stream.headersSent) this.#respond({ ':status': this.#status }, false);
  }

  /** The informational HEADERS frame; the final answer follows. */
  interim(code: number): void {
    this.stream.additionalHeaders({ ':status': code });
  }

  /**
   * Fields after the body, in a trailing HEADERS frame. They must be given before the
   * head (node:http2 asks for them only if told so when the head goes out): no HTTP
   * answer of ours carries any; gRPC, which does, is answered by its own adapter.
   */
  trailers(fields: Readonly<Record<string, string>>): void {
    if (this.stream.headersSent) throw new Error('HTTP/2 trailers must be set before the head');
    if (this.#trailers === null) this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.#trailers!));
    this.#trailers = { ...this.#trailers, ...fields };
  }

  /**
   * reset: the stream is dropped. refuse: REFUSED_STREAM, so the client may retry
   * elsewhere. cancel: CANCEL.
   */
  abort(kind: AbortKind): void {
    const { stream } = this;
    if (kind === 'refuse') {
      this.#status = 503;
      refuseNow(stream);
    } else if (kind === 'cancel') {
      cancelNow(stream);
    } else {
      stream.destroy();
    }
    closeExchange(this.#ledger, this, httpOutcome(this.#abortedStatus()), true);
  }

  stopReading(): void {
    stopReadingStream(this.stream);
  }

  /**
   * reset is the stream's RST_STREAM with the fault's code and the session lives on;
   * close drops the connection; truncate and reset-after end in RST_STREAM too (a
   * stream cannot end short of its Content-Length); goaway sends GOAWAY at once, so
   * this answer completes and the next request needs a new connection.
   */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    switch (f.kind) {
      case 'reset':
        resetNow(this.stream, f.h2Code);
        this.#faulted();
        return true;
      case 'close':
        destroySessionOf(this.stream);
        this.#faulted();
        return true;
      case 'goaway':
        closeSessionOf(this.stream);
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
    const { stream } = this;
    this.#headIfNone();
    if (!c.done) return stream.write(piece);
    this.bytesOut = c.sent;
    const cut = () => resetNow(stream, c.fault.h2Code);
    if (piece.length > 0) stream.write(piece, cut);
    else setImmediate(cut);
    this.#faulted();
    return false;
  }

  /** A fault ended the exchange: aborted, with the status sent (0 when nothing was). */
  #faulted(): void {
    closeExchange(this.#ledger, this, httpOutcome(this.stream.headersSent ? this.#status : 0), true);
  }

  /** A stream left open after its HEADERS frame may carry a body; no header says so. */
  get bodyMayFollow(): boolean {
    return this.stream.endAfterHeaders === false;
  }

  get body(): ServerHttp2Stream {
    return this.stream;
  }

  get refusable(): boolean {
    return true;
  }

  requestInfo(declared: number, body: BodyResult): RequestInfo {
    return requestInfo(this, this.facts, this.target, declared, body, this.requestId);
  }

  /** A body that trickles would otherwise hold its stream as long as the session lives. */
  bodyDeadline(ms: number, expired: () => void): void {
    const { stream } = this;
    const timer = setTimeout(() => {
      if (!stream.readableEnded && !stream.destroyed) expired();
    }, ms);
    const clear = () => clearTimeout(timer);
    stream.once('end', clear);
    stream.once('close', clear);
  }

  /** HTTP/2 ends the stream after the answer (stopReading): nothing is read. */
  dropBody(_maxBytes: number, _ms: number, _cut: (reason: string) => void): void {
    this.stopReading();
  }

  onClose(fn: () => void): void {
    this.stream.once('close', fn);
  }

  onPeerGone(fn: () => void): () => void {
    const { stream } = this;
    const gone = () => {
      if (!this.#answered()) fn();
    };
    stream.once('close', gone);
    return () => stream.off('close', gone);
  }

  /**
   * Whether the whole answer went out: ended here, and either our side of the stream
   * finished, or nghttp2 closed the stream without an error code (both sides sent
   * END_STREAM) in a session still alive. Not the stream's own writableEnded:
   * node:http2 ends the writable side of a stream the peer reset, too. Not
   * writableFinished alone: when the request had a body, node:http2 often closes the
   * stream, the answer delivered, before it reports our side finished. The live
   * session rules out the streams of a destroyed one (the connection lost, or
   * destroyed here), which node:http2 may close with NO_ERROR too.
   */
  #answered(): boolean {
    if (!this.#ended) return false;
    const { stream } = this;
    if (stream.writableFinished) return true;
    return stream.rstCode === NGHTTP2_NO_ERROR && this.#session !== undefined && !this.#session.destroyed;
  }

  /**
   * The handler returned. The record closes when the stream closes, however it ends:
   * as aborted if the answer did not end complete.
   */
  handlerReturned(): void {
    if (this.closed || this.#watching) return;
    this.#watching = true;
    // A stream closes once: 'on' spares the once-wrapper.
    this.stream.on('close', () => {
      const aborted = !this.#answered();
      closeExchange(this.#ledger, this, httpOutcome(aborted ? this.#abortedStatus() : this.#status), aborted);
    });
  }

  /** A client that left before any answer was sent is recorded as 499 (nginx's "client closed request"). */
  #abortedStatus(): number {
    return this.stream.headersSent ? this.#status : 499;
  }
}
