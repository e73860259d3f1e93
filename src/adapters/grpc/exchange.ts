// A gRPC call's exchange and its answer port, over node:http2's compatibility
// objects (the same request and response the HTTP adapter gets). The record is a
// 'grpc' exchange whose outcome is the gRPC status the trailers carry; the port
// closes it, and nothing else does: when the trailers and the end are handed to
// HTTP/2, or, cut short, when the stream closes first (the client cancelled, its
// deadline passed, the connection went): then as CANCELLED, aborted.
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import { closeExchange, type AbortKind, type AnswerPort, type ConnectionFault } from '../../core/answer-port.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { Exchange, grpcOutcome } from '../../core/exchange.ts';
import type { Ledger } from '../../core/ledger.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import { cancelStream, closeSession, destroySession, refuseStream, resetStream, stopReading } from '../http2/stream.ts';
import { isHttp2 } from '../http2/stream.ts';
import { Status, contentTypeOf, encodeMessage, frame, trailerFrame, type Flavour } from './wire.ts';

/** What a gRPC client makes of a RST_STREAM code (the gRPC HTTP/2 protocol spec); INTERNAL otherwise. */
const RESET_STATUS: Readonly<Record<number, number>> = {
  7: Status.UNAVAILABLE,
  8: Status.CANCELLED,
  11: Status.RESOURCE_EXHAUSTED,
  12: Status.PERMISSION_DENIED,
};

/** The part of an HTTP/2 response's stream the head is written on. */
interface H2ResponseStream {
  readonly destroyed: boolean;
  readonly closed: boolean;
  respond(headers: readonly string[], options: { waitForTrailers: boolean }): void;
}
const WITH_TRAILERS = Object.freeze({ waitForTrailers: true });

export class GrpcExchange extends Exchange implements AnswerPort {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly #ledger: Ledger;
  /** gRPC, or gRPC-Web (binary or text), which also runs over HTTP/1.1. */
  readonly flavour: Flavour;
  /** The status the trailers carry, once set; -1 before. */
  #code = -1;
  /** CORS headers for a gRPC-Web call from an allowed origin ([name, value, ...]); set by serve.ts. */
  cors: readonly string[] = [];
  /** The call being served, told when the stream closes (after the record is). */
  call: { streamClosed(): void } | null = null;

  constructor(
    ledger: Ledger,
    req: IncomingMessage,
    res: ServerResponse,
    facts: ConnectionFacts,
    scan: HeaderScan,
    flavour: Flavour,
  ) {
    super('grpc', facts, req.method ?? 'OTHER', req.url ?? '/', scan, true);
    this.req = req;
    this.res = res;
    this.flavour = flavour;
    this.#ledger = ledger;
    // Whatever ends the stream before the answer is complete closes the record. The
    // one 'close' listener of a call ('close' comes once: no once() wrapper).
    res.on('close', () => {
      if (!this.closed) closeExchange(ledger, this, grpcOutcome(Status.CANCELLED), true);
      this.call?.streamClosed();
    });
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  /** The status given to the trailers; -1 before. */
  get code(): number {
    return this.#code;
  }

  /**
   * gRPC's head: always 200, and out at once (the messages may take their time). On
   * HTTP/2 it is handed to the stream as a header list, as the compatibility
   * response would after copying and checking each name and value into an object
   * (a tenth of a unary call's CPU): every name and value here is the server's own
   * or passed the controls' grammar. With the trailers to come, as the compatibility
   * response always asks, whose 'wantTrailers' sends the ones addTrailers gave it;
   * its write and end go on as after its own writeHead.
   */
  head(status: number, headers: readonly OutgoingHttpHeader[]): boolean {
    const stream = (this.res as ServerResponse & { stream?: H2ResponseStream }).stream;
    if (stream === undefined) {
      this.res.writeHead(status, headers as string[]);
      this.res.flushHeaders();
    } else if (!stream.destroyed && !stream.closed) {
      stream.respond([':status', String(status), ...(headers as string[])], WITH_TRAILERS);
    }
    return true;
  }

  write(chunk: string | Uint8Array): boolean {
    this.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return this.res.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }

  end(chunk?: string | Uint8Array): void {
    if (chunk !== undefined) this.bytesOut += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
    closeExchange(this.#ledger, this, grpcOutcome(this.#code < 0 ? Status.UNKNOWN : this.#code), false);
  }

  /** gRPC has no 1xx answers. */
  interim(): void {}

  /** The trailers (gRPC-Web: the trailer frame); `grpc-status` among them is the exchange's outcome. */
  trailers(fields: Readonly<Record<string, string | string[]>>): void {
    const code = fields['grpc-status'];
    if (code !== undefined) this.#code = Number(code);
    if (this.flavour === 'grpc') this.res.addTrailers(fields);
    else this.write(this.#text(trailerFrame(fields)));
  }

  /** Whether a refusal can be REFUSED_STREAM (HTTP/2); over HTTP/1.1 gRPC-Web is answered UNAVAILABLE instead. */
  get refusable(): boolean {
    return isHttp2(this.req);
  }

  /** gRPC-Web text: each frame as base64 (padded, as its clients read them one by one). */
  #text(bytes: Buffer): Buffer | string {
    return this.flavour === 'web-text' ? bytes.toString('base64') : bytes;
  }

  /**
   * refuse: REFUSED_STREAM, nothing processed (a gRPC client retries it
   * transparently), recorded as UNAVAILABLE. cancel: RST_STREAM CANCEL. reset: the
   * stream destroyed. Both recorded as CANCELLED, or the status already set.
   */
  abort(kind: AbortKind): void {
    if (kind === 'refuse') refuseStream(this.res);
    else if (kind === 'cancel') cancelStream(this.res);
    else this.res.destroy();
    const code = kind === 'refuse' ? Status.UNAVAILABLE : this.#code < 0 ? Status.CANCELLED : this.#code;
    closeExchange(this.#ledger, this, grpcOutcome(code), true);
  }

  stopReading(): void {
    stopReading(this.req, this.res);
  }

  /**
   * A connection fault before any answer: reset is the stream's RST_STREAM with the
   * fault's code (gRPC-Web over HTTP/1.1: a TCP RST), close drops the connection,
   * goaway closes the session gracefully and the call is answered. A reset or close
   * is recorded as the status a gRPC client makes of it (the gRPC spec's mapping of
   * RST_STREAM codes), aborted.
   */
  fault(f: ConnectionFault): boolean {
    this.faultLabel = f.label;
    const h2 = isHttp2(this.req);
    if (f.kind === 'goaway') {
      if (h2) closeSession(this.res);
      return false;
    }
    if (f.kind === 'reset' && h2) resetStream(this.res, f.h2Code);
    else if (f.kind === 'reset') this.req.socket.resetAndDestroy();
    else if (h2) destroySession(this.res);
    else this.req.socket.destroySoon();
    const code = f.kind === 'close' ? Status.UNAVAILABLE : (RESET_STATUS[f.h2Code] ?? Status.INTERNAL);
    closeExchange(this.#ledger, this, grpcOutcome(code), true);
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

  // --- gRPC's own shape, written through the port above

  /** The response headers, once: before the first message or the trailers. */
  sendHeaders(extra: readonly string[] = []): void {
    if (this.res.headersSent) return;
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
