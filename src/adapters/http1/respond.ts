// The one response writer. Every answer the server gives goes through here: the
// echo, the operations endpoints, errors, event streams, generated bodies, and the
// raw answers written on sockets node:http does not own (parser errors, refused
// upgrades, CONNECT). It owns the headers every answer carries, HEAD, and the byte
// count of the exchange; an exchange's answer goes through its port (exchange.ts:
// the bodiless statuses, interim responses, the end that closes its record).
import { STATUS_CODES, type IncomingMessage, type OutgoingHttpHeader, type ServerResponse } from 'node:http';
import { bodilessHeaders, isBodiless, type HttpExchange } from './exchange.ts';

export const TEXT_TYPE = 'text/plain; charset=utf-8';

/**
 * The head of an answer as one flat array (node:http's fastest path to the wire),
 * with the headers every answer carries; the caller may append to it. Content-Type
 * is always the server's choice, and nosniff keeps browsers to it.
 */
export function answerHeaders(contentType: string, length: number | null, requestId: string): OutgoingHttpHeader[] {
  return length === null
    ? ['Content-Type', contentType, 'X-Request-Id', requestId, 'X-Content-Type-Options', 'nosniff', 'Cache-Control', 'no-store']
    : ['Content-Type', contentType, 'Content-Length', String(length), 'X-Request-Id', requestId,
        'X-Content-Type-Options', 'nosniff', 'Cache-Control', 'no-store'];
}

/**
 * Writes a complete answer: `headers` from answerHeaders (plus any extra), then the
 * body unless the request is HEAD or the status bodiless. Returns the body bytes sent.
 */
export function writeAnswer(req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeader[], body: string, length: number): number {
  if (isBodiless(status)) {
    res.writeHead(status, bodilessHeaders(headers) as string[]);
    res.end();
    return 0;
  }
  res.writeHead(status, headers as string[]);
  if (req.method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(body);
  return length;
}

/** A complete answer on an exchange, counted in its bytes out (before the end closes its record). */
export function sendWith(x: HttpExchange, status: number, headers: OutgoingHttpHeader[], body: string, length: number): void {
  if (!x.head(status, headers)) return;
  if (x.method === 'HEAD') {
    x.end();
    return;
  }
  x.bytesOut = length;
  x.end(body);
}

/** A complete answer with the common headers, plus `extra` [name, value, ...]. */
export function send(x: HttpExchange, status: number, contentType: string, body: string, extra?: readonly string[]): void {
  const length = Buffer.byteLength(body);
  const headers = answerHeaders(contentType, length, x.requestId);
  if (extra !== undefined) headers.push(...extra);
  sendWith(x, status, headers, body, length);
}

/** A short plain-text answer (operations endpoints, errors). */
export function sendText(x: HttpExchange, status: number, text: string, extra?: readonly string[]): void {
  send(x, status, TEXT_TYPE, text, extra);
}

/**
 * The head of an answer whose body follows in pieces (an event stream, a generated
 * body). False when the status is bodiless: the answer is then complete already.
 * The caller counts the bytes it writes.
 */
export function beginBody(x: HttpExchange, status: number, headers: OutgoingHttpHeader[]): boolean {
  if (!x.head(status, headers)) return false;
  // The head goes out now, as a string: node:http would put it in front of an
  // interim response still queued behind a pipelined request when the first body
  // write is a Buffer, and the 1xx would land inside the body.
  x.res.flushHeaders();
  return true;
}

/** A 1xx response ahead of the final one. */
export function sendInterim(x: HttpExchange, code: number): void {
  x.interim(code);
}

/**
 * A complete HTTP/1.1 answer as bytes, for sockets node:http no longer (or not yet)
 * owns: parser errors, refused upgrades, CONNECT. The same common headers; it always
 * closes the connection. `extra` is [name, value, ...].
 */
export function rawAnswer(status: number, body: string, extra: readonly string[] = []): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Type: ${TEXT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${RAW_COMMON}`;
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  return `${head}Connection: close\r\n\r\n${body}`;
}

/** The head lines every raw answer carries, whatever its status. */
const RAW_COMMON = 'X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n';

/**
 * The `101 Switching Protocols` of an upgrade the transport carries out itself
 * (h2c), as bytes: the common headers, then the switch. It has no body.
 */
export function rawSwitchingProtocols(protocol: string): string {
  return `HTTP/1.1 101 ${STATUS_CODES[101]}\r\n${RAW_COMMON}Connection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`;
}
