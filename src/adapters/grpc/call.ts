// One gRPC call in progress: its request messages read within the limits (each
// message and the whole stream at most --max-body-size, the request side complete
// within --request-timeout, the client's deadline), its controls applied (delay,
// then the status asked for), its answer written through the exchange's port. A
// method (services.ts) sees messages and the half-close, and answers with send and
// finish; every timer and listener ends with the call.
import { EMPTY_BODY } from '../../echo/model.ts';
import type { HttpContext } from '../../handlers/context.ts';
import { requestInfo } from '../http1/request-info.ts';
import { chosenHeaders } from '../../controls/table.ts';
import type { GrpcControls } from '../../controls/grpc.ts';
import { pickStatus } from '../../controls/values.ts';
import { pickFault } from '../../controls/faults.ts';
import { GRPC_CODES } from '../../ops/metrics.ts';
import type { GrpcExchange } from './exchange.ts';
import { echoFrame, echoRecord, type EchoRecord } from './record.ts';
import { Base64Decoder, MessageReader, messageBudgetFor, Status, WireError, type MessageBudget } from './wire.ts';

/** One budget of buffered message bytes per server (its configuration), shared by all its calls. */
const budgets = new WeakMap<object, MessageBudget>();
function budgetFor(config: { maxBodySize: number }): MessageBudget {
  let budget = budgets.get(config);
  if (budget === undefined) budgets.set(config, (budget = messageBudgetFor(config.maxBodySize)));
  return budget;
}

/** unary and server streaming take one request message; client streaming and bidi take a stream. */
export type Kind = 'unary' | 'server' | 'client' | 'bidi';

export interface Method {
  readonly kind: Kind;
  /**
   * unary and server: called once the one request message is in. client and bidi:
   * called at once with null; the method sets onMessage and onHalfClose.
   */
  run(call: Call, message: Buffer | null): void;
}

/**
 * The longest delay setTimeout keeps: a longer one (a grpc-timeout may say up to
 * 99999999H) fires after 1 ms instead, failing the call at once. Such a deadline is
 * waited for in steps.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The call's own timers: module functions given the call, so none is a closure per call. */
function armDeadline(call: Call, ms: number): void {
  const step = Math.min(ms, MAX_TIMER_MS);
  call.deadlineTimer = setTimeout(onDeadline, step, call, ms - step);
}
function onDeadline(call: Call, rest: number): void {
  call.deadlineTimer = null;
  if (rest > 0) {
    if (!call.done) armDeadline(call, rest);
    return;
  }
  call.guarded(deadlineExceeded);
}
function deadlineExceeded(call: Call): void {
  call.finish(Status.DEADLINE_EXCEEDED, 'deadline exceeded (grpc-timeout)');
}
function onRequestTimeout(call: Call): void {
  call.requestTimer = null;
  if (!call.halfClosed) call.guarded(requestTimedOut);
}
function requestTimedOut(call: Call): void {
  const ms = call.ctx.config.requestTimeoutMs;
  call.finish(Status.DEADLINE_EXCEEDED, `request not received within --request-timeout (${ms} ms)`);
}

export class Call {
  readonly ctx: HttpContext;
  readonly x: GrpcExchange;
  readonly controls: GrpcControls | null;
  readonly reader: MessageReader;
  /** grpc-timeout as sent ('' without), and in milliseconds (0 without). */
  readonly grpcTimeout: string;
  readonly deadlineMs: number;
  onMessage: ((message: Buffer) => void) | null = null;
  onHalfClose: (() => void) | null = null;
  /** Whether the client has ended its side. */
  halfClosed = false;
  /** The client's deadline and the request side's --request-timeout, while they run. */
  deadlineTimer: NodeJS.Timeout | null = null;
  requestTimer: NodeJS.Timeout | null = null;
  /** Calls that end early on shutdown (see onShutdown); a unary call never joins them. */
  readonly #streams: Set<Call>;
  #onShutdown: (() => void) | null = null;
  /** after()'s timers and whenEnded()'s functions, made on first use (a unary Echo uses neither). */
  #timers: Set<NodeJS.Timeout> | null = null;
  #ended: (() => void)[] | null = null;
  #echo: EchoRecord | null = null;

  constructor(
    ctx: HttpContext,
    x: GrpcExchange,
    controls: GrpcControls | null,
    grpcTimeout: string,
    deadlineMs: number,
    streams: Set<Call>,
  ) {
    this.ctx = ctx;
    this.x = x;
    this.controls = controls;
    this.reader = new MessageReader(ctx.config.maxBodySize, budgetFor(ctx.config));
    this.grpcTimeout = grpcTimeout;
    this.deadlineMs = deadlineMs;
    this.#streams = streams;
    // Told by the exchange's one 'close' listener, after it closed the record.
    x.call = this;
  }

  /** What a stream does when the server shuts down (end early, cleanly); set by streams. */
  get onShutdown(): (() => void) | null {
    return this.#onShutdown;
  }

  set onShutdown(fn: (() => void) | null) {
    this.#onShutdown = fn;
    if (fn !== null && !this.done) this.#streams.add(this);
  }

  /** Whether the call has its status (or was cut short): nothing more is written. */
  get done(): boolean {
    return this.x.closed || this.x.code >= 0;
  }

  /** Runs `fn` once the call is over, however it ended. */
  whenEnded(fn: () => void): void {
    (this.#ended ??= []).push(fn);
  }

  /** A timer that ends with the call. */
  after(ms: number, fn: () => void): void {
    const timers = (this.#timers ??= new Set());
    const t = setTimeout(() => {
      timers.delete(t);
      if (!this.done) this.#guard(fn);
    }, ms);
    timers.add(t);
  }

  /** Runs `fn` on the call, as a timer's would be: unless the call is over, and guarded. */
  guarded(fn: (call: Call) => void): void {
    if (!this.done) this.#guard(() => fn(this));
  }

  /** One response message; false when the peer is behind. */
  send(message: Uint8Array): boolean {
    if (this.done) return false;
    return this.x.sendMessage(message, this.#metadata());
  }

  /** One response message already framed (its 5-byte prefix included, as echo() writes it). */
  sendFrame(framed: Buffer): boolean {
    if (this.done) return false;
    return this.x.sendFrame(framed, this.#metadata());
  }

  /**
   * The call's end, with its status and the trailers x-echo-trailer asked for
   * (whatever the status). When the client has not finished sending, its
   * stream is reset after the trailers are out (nothing more of it is read).
   */
  finish(code: number, message = ''): void {
    if (this.done) return;
    // Before the answer: over HTTP/1.1 its head must then say Connection: close, or
    // the unread rest of the body would be read as the connection's next request.
    if (!this.halfClosed) this.x.stopReading();
    this.x.finish(code, message, this.#metadata(), this.controls?.trailers);
    this.#cleanup();
  }

  /**
   * What the controls ask before an answer: wait x-echo-delay, then end with
   * x-echo-status when it is not OK; else `answer`.
   */
  answer(answer: () => void): void {
    const c = this.controls;
    const go = () => {
      const fault = c?.fault == null ? null : pickFault(c.fault, this.ctx.deps.random);
      if (fault !== null && this.x.fault(fault)) return; // the stream's close cleans up
      const code = c?.status == null ? Status.OK : pickStatus(c.status, this.ctx.deps.random);
      if (code !== Status.OK) this.finish(code, `x-echo-status asked for ${GRPC_CODES[code]}`);
      else answer();
    };
    if (c !== null && c.delayMs > 0) this.after(c.delayMs, go);
    else go();
  }

  /**
   * The echo record of this call, as an EchoResponse message framed for sendFrame;
   * `sequence` numbers a stream's messages. The request's part of it is the same for
   * every message of a stream: built once.
   */
  echo(payload: Buffer | null, sequence = 0): Buffer {
    const { x, ctx } = this;
    const { maxEchoBody } = ctx.config;
    const size = this.controls?.size ?? null;
    const received = payload ?? EMPTY_BODY.kept;
    const kept = received.length > maxEchoBody ? received.subarray(0, maxEchoBody) : received;
    // The echo's body is not part of the record (payload is): none is described.
    this.#echo ??= echoRecord(
      requestInfo(x, x.facts, x.target, received.length, EMPTY_BODY, x.requestId),
      ctx.echoContext,
    );
    return echoFrame(this.#echo, {
      grpcTimeout: this.grpcTimeout,
      deadlineMs: this.deadlineMs,
      sequence,
      messagesReceived: this.reader.messages,
      bytesReceived: this.reader.bytes,
      payload: size === null ? kept : Buffer.alloc(size, 0x61),
      payloadBytes: size === null ? received.length : size,
      truncated: size === null && kept.length < received.length,
    });
  }

  /** Starts reading the request for `method`. */
  start(method: Method): void {
    const { x, ctx } = this;
    const { body } = x;
    if (this.deadlineMs > 0) armDeadline(this, this.deadlineMs);
    this.requestTimer = setTimeout(onRequestTimeout, ctx.config.requestTimeoutMs, this);
    const streaming = method.kind === 'client' || method.kind === 'bidi';
    let single: Buffer | null = null;
    if (streaming) this.#guard(() => method.run(this, null));
    const text = x.flavour === 'web-text' ? new Base64Decoder() : null;
    body.on('data', (chunk: Buffer) => {
      if (this.done) return;
      x.bytesIn += chunk.length;
      let messages: Buffer[];
      try {
        messages = this.reader.push(text === null ? chunk : text.push(chunk));
      } catch (err) {
        if (!(err instanceof WireError)) throw err;
        this.#refuse(err.code, err.message);
        return;
      }
      // On the wire, prefixes included: a stream of empty messages is bounded too.
      if (x.bytesIn > ctx.config.maxBodySize) {
        this.#refuse(
          Status.RESOURCE_EXHAUSTED,
          `request stream larger than --max-body-size (${ctx.config.maxBodySize} bytes)`,
        );
        return;
      }
      for (const m of messages) {
        if (this.done) return;
        if (streaming) this.#guard(() => this.onMessage?.(m));
        else if (single === null) single = m;
        else this.#refuse(Status.INTERNAL, 'more than one request message for a unary call');
      }
    });
    // Through the exchange: on HTTP/2 a reset ends the request side too, and is no half-close.
    body.on('end', () =>
      x.whenHalfClosed(() => {
        this.halfClosed = true;
        // The request side is complete: its timeout has nothing left to time.
        if (this.requestTimer !== null) {
          clearTimeout(this.requestTimer);
          this.requestTimer = null;
        }
        if (this.done) return;
        if (text?.partial === true) {
          this.#refuse(Status.INVALID_ARGUMENT, 'the gRPC-Web text request ended inside a base64 quantum');
        } else if (this.reader.partial) {
          this.finish(Status.INTERNAL, 'the request stream ended inside a message');
        } else if (streaming) {
          this.#guard(() => this.onHalfClose?.());
        } else if (single === null) {
          this.finish(Status.INTERNAL, 'no request message for a unary call');
        } else {
          const m: Buffer = single;
          this.#guard(() => method.run(this, m));
        }
      }),
    );
  }

  /** A refusal about the request, rate-limited in the log. */
  #refuse(code: number, message: string): void {
    this.ctx.log(
      'info',
      { peer: this.x.facts.peerAddress, path: this.x.target, grpcStatus: code },
      `gRPC call refused: ${message}`,
    );
    this.finish(code, message);
  }

  /** Response metadata the x-echo-header control asked for, and the delay and size a distribution gave. */
  #metadata(): string[] {
    const c = this.controls;
    if (c === null) return [];
    const chosen = chosenHeaders(c).map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v));
    if (c.headers.length === 0) return chosen;
    return [...c.headers.flat(), ...chosen];
  }

  /** A method's code never takes the server down: an error is INTERNAL, logged. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ctx.deps.logger.error(
        { err: (err as Error).message, reqId: this.x.requestId, uri: this.x.target },
        'gRPC call failed',
      );
      if (this.x.headersSent && this.done) return;
      this.finish(Status.INTERNAL, 'internal error');
    }
  }

  /** The stream closed (the exchange's record already is). */
  streamClosed(): void {
    this.#cleanup();
  }

  #cleanup(): void {
    this.reader.dispose();
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    if (this.requestTimer !== null) clearTimeout(this.requestTimer);
    this.deadlineTimer = this.requestTimer = null;
    if (this.#onShutdown !== null) this.#streams.delete(this);
    const timers = this.#timers;
    if (timers !== null) {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    }
    const ended = this.#ended;
    if (ended !== null) for (const fn of ended.splice(0)) fn();
  }
}
