// A gRPC call's exchange and its answer port. The call logic (call.ts, services.ts)
// sees one protocol-neutral seam: the request side as a Readable (`body`: its 'data'
// and 'end', pause and resume) and the answer through the port below. Two ends carry
// it: an HTTP/2 stream answered on node:http2's stream API (gRPC, and gRPC-Web over
// HTTP/2), with none of the compatibility layer's request and response objects,
// which cost a unary call more CPU than the gRPC adapter itself; and node:http's
// request and response (gRPC-Web over HTTP/1.1). The record is a 'grpc' exchange
// whose outcome is the gRPC status the trailers carry; the port closes it, and
// nothing else does: over HTTP/1.1 when the trailers and the end are handed over; on
// an HTTP/2 stream when the stream closes after them, as an HTTP/2 answer is not gone
// at end() (see GrpcStreamExchange); cut short, when the stream closes first (the
// client cancelled, its deadline passed, the connection went): then as CANCELLED,
// aborted.
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import type { Http2Session, ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import { closeExchange, type AbortKind, type AnswerPort, type ConnectionFault } from '../../core/answer-port.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { Exchange, grpcOutcome } from '../../core/exchange.ts';
import type { Ledger } from '../../core/ledger.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import { stopReadingRequest } from '../http1/exchange.ts';
import {
  cancelNow,
  closeSessionOf,
  destroySessionOf,
  refuseNow,
  resetNow,
  stopReadingStream,
} from '../http2/stream.ts';
import { Status, contentTypeOf, encodeMessage, frame, trailerFrame, type Flavour } from './wire.ts';

/** What a gRPC client makes of a RST_STREAM code (the gRPC HTTP/2 protocol spec); INTERNAL otherwise. */
const RESET_STATUS: Readonly<Record<number, number>> = {
  7: Status.UNAVAILABLE,
  8: Status.CANCELLED,
  11: Status.RESOURCE_EXHAUSTED,
  12: Status.PERMISSION_DENIED,
};

const WITH_TRAILERS = Object.freeze({ waitForTrailers: true });
const NGHTTP2_NO_ERROR = 0;

/** A reset or close fault's record: the status a gRPC client makes of it. */
function faultStatus(f: ConnectionFault): number {
  return f.kind === 'close' ? Status.UNAVAILABLE : (RESET_STATUS[f.h2Code] ?? Status.INTERNAL);
}

/** The call's exchange: gRPC's shape, written through the port its end implements. */
export abstract class GrpcExchange extends Exchange implements AnswerPort {
  protected readonly ledger: Ledger;
  /** gRPC, or gRPC-Web (binary or text), which also runs over HTTP/1.1. */
  readonly flavour: Flavour;
  /** '1.1' or '2.0', and the request's header list as the transport decoded it. */
  abstract readonly httpVersion: string;
  abstract readonly rawHeaders: readonly string[];
  /** The request side: its messages arrive as 'data', the half-close as 'end'. */
  abstract readonly body: Readable;
  /** The status the trailers carry, once set; -1 before. */
  #code = -1;
  /** CORS headers for a gRPC-Web call from an allowed origin ([name, value, ...]); set by serve.ts. */
  cors: readonly string[] = [];
  /** The call being served, told when the stream closes (after the record is). */
  call: { streamClosed(): void } | null = null;

  constructor(
    ledger: Ledger,
    facts: ConnectionFacts,
    method: string,
    target: string,
    scan: HeaderScan,
    flavour: Flavour,
  ) {
    super('grpc', facts, method, target, scan, true);
    this.ledger = ledger;
    this.flavour = flavour;
  }

  abstract get headersSent(): boolean;
  /** Whether the peer is behind (a write returned false and 'drain' has not come). */
  abstract get needsDrain(): boolean;
  abstract head(status: number, headers: readonly OutgoingHttpHeader[]): boolean;
  abstract write(chunk: string | Uint8Array): boolean;
  abstract onDrain(fn: () => void): void;
  /** The end of the answer, `chunk` last; the record is closed (closeAnswered) once the answer is gone. */
  protected abstract endAnswer(chunk?: string | Uint8Array): void;
  /** gRPC's trailers, for the end to send after the last message. */
  protected abstract sendTrailers(fields: Readonly<Record<string, string | string[]>>): void;
  abstract readonly refusable: boolean;
  abstract abort(kind: AbortKind): void;
  abstract stopReading(): void;
  abstract fault(f: ConnectionFault): boolean;
  abstract onPeerGone(fn: () => void): () => void;

  /** Runs `fn` for the request side's 'end' when it is the client's half-close, not a reset. */
  whenHalfClosed(fn: () => void): void {
    fn();
  }

  /** The status given to the trailers; -1 before. */
  get code(): number {
    return this.#code;
  }

  end(chunk?: string | Uint8Array): void {
    if (chunk !== undefined) this.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    this.endAnswer(chunk);
  }

  /** The answer is gone: the record closes with the status the trailers carry. */
  protected closeAnswered(): void {
    closeExchange(this.ledger, this, grpcOutcome(this.#code < 0 ? Status.UNKNOWN : this.#code), false);
  }

  /** gRPC has no 1xx answers. */
  interim(): void {}

  /** The trailers (gRPC-Web: the trailer frame); `grpc-status` among them is the exchange's outcome. */
  trailers(fields: Readonly<Record<string, string | string[]>>): void {
    const code = fields['grpc-status'];
    if (code !== undefined) this.#code = Number(code);
    if (this.flavour === 'grpc') this.sendTrailers(fields);
    else this.write(this.#text(trailerFrame(fields)));
  }

  /** The stream or response closed: a call not ended by then is recorded as CANCELLED, aborted. */
  protected closedUnder(): void {
    if (!this.closed) closeExchange(this.ledger, this, grpcOutcome(Status.CANCELLED), true);
    this.call?.streamClosed();
  }

  /** An abort's record: UNAVAILABLE when refused, else CANCELLED or the status already set. */
  protected recordAbort(kind: AbortKind): void {
    const code = kind === 'refuse' ? Status.UNAVAILABLE : this.#code < 0 ? Status.CANCELLED : this.#code;
    closeExchange(this.ledger, this, grpcOutcome(code), true);
  }

  /** A reset or close fault's record, aborted. */
  protected recordFault(f: ConnectionFault): void {
    closeExchange(this.ledger, this, grpcOutcome(faultStatus(f)), true);
  }

  /** gRPC-Web text: each frame as base64 (padded, as its clients read them one by one). */
  #text(bytes: Buffer): Buffer | string {
    return this.flavour === 'web-text' ? bytes.toString('base64') : bytes;
  }

  // --- gRPC's own shape, written through the port above

  /** The response headers, once: before the first message or the trailers. */
  sendHeaders(extra: readonly string[] = []): void {
    if (this.headersSent) return;
    this.head(200, [
      'content-type',
      contentTypeOf(this.flavour),
      'grpc-accept-encoding',
      'identity',
      'x-request-id',
      this.requestId,
      ...this.cors,
      ...extra,
    ]);
  }

  /** One message; false when the peer is behind (wait for onDrain). `extra`: metadata for the headers. */
  sendMessage(message: Uint8Array, extra?: readonly string[]): boolean {
    return this.sendFrame(frame(message), extra);
  }

  /** One message already framed (its 5-byte prefix included). */
  sendFrame(framed: Buffer, extra?: readonly string[]): boolean {
    this.sendHeaders(extra);
    return this.write(this.#text(framed));
  }

  /**
   * The call's end: its status in the trailers, after `trailing` (lower-case names;
   * a repeated name stays repeated, as gRPC metadata readers do not split commas).
   * Only the first finish counts.
   */
  finish(
    code: number,
    message = '',
    extra?: readonly string[],
    trailing: readonly (readonly [string, string])[] = [],
  ): void {
    if (this.#code >= 0 || this.closed) return;
    this.sendHeaders(extra);
    const fields: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    for (const [name, value] of trailing) {
      const had = fields[name];
      fields[name] = had === undefined ? value : [...(typeof had === 'string' ? [had] : had), value];
    }
    fields['grpc-status'] = String(code);
    if (message !== '') fields['grpc-message'] = encodeMessage(message);
    this.trailers(fields);
    this.end();
  }
}

/**
 * A call on an HTTP/2 stream, answered on node:http2's stream API: the request from
 * the stream's 'data' and 'end', the head with respond() (trailers to come), the
 * messages with write(), gRPC's trailers in the stream's 'wantTrailers'.
 */
export class GrpcStreamExchange extends GrpcExchange {
  readonly stream: ServerHttp2Stream;
  readonly rawHeaders: string[];
  readonly httpVersion = '2.0';
  /** The stream's session, kept: node:http2 forgets it when the stream closes. */
  readonly #session: Http2Session | undefined;
  /** Whether the answer was ended through this port. */
  #ended = false;

  constructor(
    ledger: Ledger,
    stream: ServerHttp2Stream,
    method: string,
    target: string,
    rawHeaders: string[],
    facts: ConnectionFacts,
    scan: HeaderScan,
    flavour: Flavour,
  ) {
    super(ledger, facts, method, target, scan, flavour);
    this.stream = stream;
    this.rawHeaders = rawHeaders;
    this.#session = stream.session;
    // The record closes when the stream does: answered if the whole answer went out,
    // else (reset, cancelled, the connection gone first) as CANCELLED, aborted. A
    // stream closes once: 'on' spares the once-wrapper.
    stream.on('close', () => {
      if (!this.closed && this.#answered()) this.closeAnswered();
      this.closedUnder();
    });
  }

  /**
   * Whether the whole answer went out, as H2Exchange tells it: ended here, and either
   * our side of the stream finished, or nghttp2 closed the stream without an error
   * code in a session still alive (node:http2 ends the writable side of a stream the
   * peer reset too, and may close a destroyed session's streams with NO_ERROR).
   */
  #answered(): boolean {
    if (!this.#ended) return false;
    const { stream } = this;
    if (stream.writableFinished) return true;
    return stream.rstCode === NGHTTP2_NO_ERROR && this.#session !== undefined && !this.#session.destroyed;
  }

  get body(): Readable {
    return this.stream;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get needsDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  get refusable(): boolean {
    return true;
  }

  /**
   * gRPC's head: always 200, and out at once (the messages may take their time),
   * handed to the stream as a header list: every name and value here is the
   * server's own or passed the controls' grammar. With the trailers to come, which
   * 'wantTrailers' sends (gRPC-Web, whose trailers are a message, gets the empty
   * trailing frame node:http2 sends when nothing listens).
   */
  head(status: number, headers: readonly OutgoingHttpHeader[]): boolean {
    const { stream } = this;
    if (!stream.destroyed && !stream.closed)
      stream.respond([':status', String(status), ...(headers as string[])], WITH_TRAILERS);
    return true;
  }

  write(chunk: string | Uint8Array): boolean {
    this.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const { stream } = this;
    if (stream.destroyed || stream.writableEnded) return false;
    return stream.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.stream.once('drain', fn);
  }

  /**
   * An HTTP/2 answer is not gone at end(): node:http2 holds it, whole, until the
   * client's flow-control window lets it out, which a client that never reads never
   * does. So the record closes when the stream does (see the constructor), and the
   * call stays counted, in flight and against its client's share, until then: the
   * in-flight budget bounds what stalled answers hold, as for any HTTP/2 answer.
   */
  protected endAnswer(chunk?: string | Uint8Array): void {
    this.#ended = true;
    const { stream } = this;
    if (stream.destroyed || stream.writableEnded) return;
    if (chunk === undefined) stream.end();
    else stream.end(chunk);
  }

  protected sendTrailers(fields: Readonly<Record<string, string | string[]>>): void {
    const { stream } = this;
    stream.once('wantTrailers', () => stream.sendTrailers(fields));
  }

  /**
   * refuse: REFUSED_STREAM, nothing processed (a gRPC client retries it
   * transparently), recorded as UNAVAILABLE. cancel: RST_STREAM CANCEL. reset: the
   * stream destroyed. Both recorded as CANCELLED, or the status already set.
   */
  abort(kind: AbortKind): void {
    if (kind === 'refuse') refuseNow(this.stream);
    else if (kind === 'cancel') cancelNow(this.stream);
    else this.stream.destroy();
    this.recordAbort(kind);
  }

  stopReading(): void {
    stopReadingStream(this.stream);
  }

  /**
   * A connection fault before any answer: reset is the stream's RST_STREAM with the
   * fault's code, close drops the connection, goaway closes the session gracefully
   * and the call is answered. A reset or close is recorded as the status a gRPC
   * client makes of it (the gRPC spec's mapping of RST_STREAM codes), aborted.
   */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    if (f.kind === 'goaway') {
      closeSessionOf(this.stream);
      return false;
    }
    if (f.kind === 'reset') resetNow(this.stream, f.h2Code);
    else destroySessionOf(this.stream);
    this.recordFault(f);
    return true;
  }

  /**
   * node:http2 ends a stream's readable side when the peer resets it too, before the
   * 'aborted' and 'close' of the same reset: read at once, a RST_STREAM would be a
   * half-close (a client stream answered OK, a unary call cut inside its message
   * INTERNAL). The reset is seen by the next turn of the loop: its 'close' has closed
   * the record as CANCELLED by then.
   */
  whenHalfClosed(fn: () => void): void {
    setImmediate(() => {
      if (!this.closed && !this.stream.aborted) fn();
    });
  }

  onPeerGone(fn: () => void): () => void {
    const { stream } = this;
    // Not the stream's own writableEnded: node:http2 ends the writable side of a
    // stream the peer reset, too.
    const gone = () => {
      if (!this.#ended || !stream.writableFinished) fn();
    };
    stream.once('close', gone);
    return () => stream.off('close', gone);
  }
}

/** A gRPC-Web call over HTTP/1.1, on node:http's request and response. */
export class GrpcWebExchange extends GrpcExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;

  constructor(
    ledger: Ledger,
    req: IncomingMessage,
    res: ServerResponse,
    facts: ConnectionFacts,
    scan: HeaderScan,
    flavour: Flavour,
  ) {
    super(ledger, facts, req.method ?? 'OTHER', req.url ?? '/', scan, flavour);
    this.req = req;
    this.res = res;
    // The one 'close' listener of a call ('close' comes once: no once() wrapper).
    res.on('close', () => this.closedUnder());
  }

  get httpVersion(): string {
    return this.req.httpVersion;
  }

  get rawHeaders(): string[] {
    return this.req.rawHeaders;
  }

  get body(): Readable {
    return this.req;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get needsDrain(): boolean {
    return this.res.writableNeedDrain;
  }

  /** Over HTTP/1.1 a refusal is answered (UNAVAILABLE): there is no REFUSED_STREAM. */
  get refusable(): boolean {
    return false;
  }

  head(status: number, headers: readonly OutgoingHttpHeader[]): boolean {
    this.res.writeHead(status, headers as string[]);
    this.res.flushHeaders();
    return true;
  }

  write(chunk: string | Uint8Array): boolean {
    this.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return this.res.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }

  /** Closed at end(): what an unread answer holds over HTTP/1.1 is bounded by the socket buffer and the connection. */
  protected endAnswer(chunk?: string | Uint8Array): void {
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
    this.closeAnswered();
  }

  /** gRPC-Web's trailers are its last message: none go in HTTP trailers. */
  protected sendTrailers(fields: Readonly<Record<string, string | string[]>>): void {
    this.res.addTrailers(fields);
  }

  /** Nothing to refuse or cancel on an HTTP/1.1 stream: reset drops the connection. */
  abort(kind: AbortKind): void {
    if (kind === 'reset') this.res.destroy();
    this.recordAbort(kind);
  }

  stopReading(): void {
    stopReadingRequest(this.req, this.res);
  }

  /** reset: a TCP RST; close: the connection dropped; goaway: nothing to do over HTTP/1.1, answered. */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    if (f.kind === 'goaway') return false;
    if (f.kind === 'reset') this.req.socket.resetAndDestroy();
    else this.req.socket.destroySoon();
    this.recordFault(f);
    return true;
  }

  onPeerGone(fn: () => void): () => void {
    const { res } = this;
    const gone = () => {
      if (!res.writableEnded || !res.writableFinished) fn();
    };
    res.once('close', gone);
    return () => res.off('close', gone);
  }
}
