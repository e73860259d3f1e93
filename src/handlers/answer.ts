// Complete answers written through the answer port: the headers every answer
// carries, HEAD, and the byte count of the exchange. The port does the rest (the
// bodiless statuses, interim responses, the end that closes the record).
import type { AnswerPort } from '../core/answer-port.ts';
import type { Exchange } from '../core/exchange.ts';

export const TEXT_TYPE = 'text/plain; charset=utf-8';

/** A head as one flat array [name, value, ...] (node:http's fastest path to the wire). */
export type HeadFields = (string | number | string[])[];

/**
 * The head of an answer, with the headers every answer carries; the caller may
 * append to it. Content-Type is always the server's choice, and nosniff keeps
 * browsers to it.
 */
export function answerHeaders(contentType: string, length: number | null, requestId: string): HeadFields {
  return length === null
    ? [
        'Content-Type',
        contentType,
        'X-Request-Id',
        requestId,
        'X-Content-Type-Options',
        'nosniff',
        'Cache-Control',
        'no-store',
      ]
    : [
        'Content-Type',
        contentType,
        'Content-Length',
        String(length),
        'X-Request-Id',
        requestId,
        'X-Content-Type-Options',
        'nosniff',
        'Cache-Control',
        'no-store',
      ];
}

type Answering = Exchange & AnswerPort;

/** A complete answer on an exchange, counted in its bytes out (before the end closes its record). */
export function sendWith(x: Answering, status: number, headers: HeadFields, body: string, length: number): void {
  if (!x.head(status, headers)) return;
  if (x.method === 'HEAD') {
    x.end();
    return;
  }
  x.bytesOut = length;
  x.end(body);
}

/** A complete answer with the common headers, plus `extra` [name, value, ...]. */
export function send(x: Answering, status: number, contentType: string, body: string, extra?: readonly string[]): void {
  const length = Buffer.byteLength(body);
  const headers = answerHeaders(contentType, length, x.requestId);
  if (extra !== undefined) headers.push(...extra);
  sendWith(x, status, headers, body, length);
}

/** A short plain-text answer (operations endpoints, errors). */
export function sendText(x: Answering, status: number, text: string, extra?: readonly string[]): void {
  send(x, status, TEXT_TYPE, text, extra);
}

/**
 * The head of an answer whose body follows in pieces (an event stream, a generated
 * body), sent at once. False when the status is bodiless: the answer is then
 * complete already. The caller counts the bytes it writes.
 */
export function beginBody(x: Answering, status: number, headers: HeadFields): boolean {
  return x.head(status, headers, true);
}
