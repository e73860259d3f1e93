// gRPC's wire form over HTTP/2 (grpc/grpc, doc/PROTOCOL-HTTP2.md), the parts a
// server needs: which requests are gRPC, the 5-byte message prefix, the
// grpc-timeout header, and the grpc-message text. No node:http2 object here: the
// call (call.ts) feeds the bytes in and writes what comes out.

/** The status codes by name, as grpc-status carries them. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** gRPC over HTTP/2; gRPC-Web (any HTTP version) with binary messages, or with base64 text. */
export type Flavour = 'grpc' | 'web' | 'web-text';

const FLAVOURS: Readonly<Record<string, Flavour>> = {
  '': 'grpc',
  '+proto': 'grpc',
  '-web': 'web',
  '-web+proto': 'web',
  '-web-text': 'web-text',
  '-web-text+proto': 'web-text',
};

/**
 * Which gRPC a content type names, in its protobuf encoding: `application/grpc`,
 * `application/grpc-web`, `application/grpc-web-text`, each also with `+proto` and
 * with parameters; null for anything else. Other codecs (`+json`) are not served:
 * they get the HTTP echo.
 */
export function grpcFlavour(type: string | undefined): Flavour | null {
  if (type === undefined || type.length < 16) return null;
  const lower = type.toLowerCase();
  if (!lower.startsWith('application/grpc')) return null;
  let end = lower.indexOf(';');
  if (end < 0) end = lower.length;
  return FLAVOURS[lower.slice(16, end).trim()] ?? null;
}

/** The content type of an answer in this flavour. */
export function contentTypeOf(flavour: Flavour): string {
  return flavour === 'grpc'
    ? 'application/grpc'
    : flavour === 'web'
      ? 'application/grpc-web+proto'
      : 'application/grpc-web-text+proto';
}

/** gRPC-Web's trailers: a frame flagged 0x80 whose body is the fields as HTTP/1.1 header lines. */
export function trailerFrame(fields: Readonly<Record<string, string | readonly string[]>>): Buffer {
  let text = '';
  for (const [k, v] of Object.entries(fields))
    for (const one of typeof v === 'string' ? [v] : v) text += `${k}:${one}\r\n`;
  const body = Buffer.from(text, 'latin1');
  const out = frame(body);
  out[0] = 0x80;
  return out;
}

/** A character that is neither base64's alphabet nor its padding. */
const NOT_BASE64 = /[^A-Za-z0-9+/=]/;
const malformed = () => new WireError(Status.INVALID_ARGUMENT, 'malformed base64 in a gRPC-Web text request');

/**
 * gRPC-Web text: the request body is base64, decoded here in whole quanta as it arrives.
 * Strict, because a lenient decoder turns garbage into an empty or truncated message that
 * the call would then answer as if it were valid. Clients may send each frame as its own
 * padded run, so a run may end with padding and another begin after it. Throws WireError.
 */
export class Base64Decoder {
  #rest = '';

  /** Whether characters of an unfinished quantum are left (the body ended inside one). */
  get partial(): boolean {
    return this.#rest.length > 0;
  }

  push(chunk: Buffer): Buffer {
    const text = this.#rest + chunk.toString('latin1').replace(/[\r\n]/g, '');
    const whole = text.length - (text.length % 4);
    this.#rest = text.slice(whole);
    const quanta = text.slice(0, whole);
    if (NOT_BASE64.test(quanta)) throw malformed();
    // Node's decoder stops at the first padding: decode each padded run on its own.
    const runs: Buffer[] = [];
    let start = 0;
    for (let pad = quanta.indexOf('='); pad !== -1; pad = quanta.indexOf('=', start)) {
      // Padding ends a quantum: "xx==" or "xxx=", nothing else.
      const end = pad - (pad % 4) + 4;
      const at = pad % 4;
      if (at < 2 || (at === 2 && quanta[pad + 1] !== '=')) throw malformed();
      runs.push(Buffer.from(quanta.slice(start, end), 'base64'));
      start = end;
    }
    if (start < quanta.length) runs.push(Buffer.from(quanta.slice(start), 'base64'));
    return runs.length === 1 ? runs[0]! : Buffer.concat(runs);
  }
}

/** One message with its prefix: not compressed, its length big-endian. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Why a request stream cannot be read on. */
export class WireError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * Splits the request body into messages as it arrives. Each message is at most
 * `maxMessage` bytes (its prefix says its length before any of it is buffered, so an
 * oversized one is refused at once, RESOURCE_EXHAUSTED); a compressed one is refused
 * (UNIMPLEMENTED: this server offers only `identity`, as grpc-accept-encoding says).
 */
/**
 * Message bytes a server may hold for all its calls at once. A message is buffered whole
 * before it is decoded, so without a shared bound a hundred calls each sending most of a
 * --max-body-size message would hold a gigabyte, far past what the in-flight sizing allows.
 */
export class MessageBudget {
  readonly limit: number;
  used = 0;
  constructor(limit: number) {
    this.limit = limit;
  }
}

/** The budget for a server whose message limit is `maxMessage`: a few whole messages, 32 MiB at least. */
export function messageBudgetFor(maxMessage: number): MessageBudget {
  return new MessageBudget(Math.max(2 * maxMessage, 32 * 1024 * 1024));
}

export class MessageReader {
  readonly #maxMessage: number;
  readonly #budget: MessageBudget | null;
  /** Bytes of the budget this call holds: its message being read (or the last one read). */
  #reserved = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The length of the message being read, once its prefix is in; -1 before. */
  #length = -1;
  messages = 0;
  bytes = 0;

  constructor(maxMessage: number, budget: MessageBudget | null = null) {
    this.#maxMessage = maxMessage;
    this.#budget = budget;
  }

  /** Gives back what this call held of the budget; the call is over. */
  dispose(): void {
    if (this.#budget !== null) this.#budget.used -= this.#reserved;
    this.#reserved = 0;
  }

  /** Whether a message was begun and not finished (the stream ended inside one). */
  get partial(): boolean {
    return this.#pendingBytes > 0;
  }

  /** Takes a chunk; returns the messages it completes. Throws WireError. */
  push(chunk: Buffer): Buffer[] {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.#length < 0) {
        if (this.#pendingBytes < 5) return out;
        const head = this.#take(5);
        if (head[0] !== 0) {
          throw new WireError(
            head[0] === 1 ? Status.UNIMPLEMENTED : Status.INTERNAL,
            head[0] === 1
              ? 'compressed messages are not supported (grpc-accept-encoding: identity)'
              : `invalid message flags ${head[0]}`,
          );
        }
        const length = head.readUInt32BE(1);
        if (length > this.#maxMessage) {
          throw new WireError(
            Status.RESOURCE_EXHAUSTED,
            `message of ${length} bytes is larger than --max-body-size (${this.#maxMessage})`,
          );
        }
        if (this.#budget !== null) {
          this.#budget.used -= this.#reserved;
          this.#reserved = 0;
          if (this.#budget.used + length > this.#budget.limit) {
            throw new WireError(
              Status.RESOURCE_EXHAUSTED,
              `message of ${length} bytes would take the messages buffered by all calls over ${this.#budget.limit} bytes`,
            );
          }
          this.#budget.used += length;
          this.#reserved = length;
        }
        this.#length = length;
      }
      if (this.#pendingBytes < this.#length) return out;
      out.push(this.#take(this.#length));
      this.messages++;
      this.bytes += this.#length;
      this.#length = -1;
    }
  }

  #take(n: number): Buffer {
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#pending = rest.length === 0 ? [] : [rest];
    this.#pendingBytes = rest.length;
    return taken;
  }
}

const TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * grpc-timeout (at most 8 digits and a unit) in milliseconds, rounded up so a
 * timeout under a millisecond is not none; null when absent, undefined when malformed.
 */
export function parseTimeout(text: string | undefined): number | null | undefined {
  if (text === undefined) return null;
  const m = TIMEOUT.exec(text);
  if (m === null) return undefined;
  return Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!);
}

/** grpc-message is percent-encoded UTF-8: everything outside printable ASCII, and `%`. */
export function encodeMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}
