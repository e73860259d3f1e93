// The answers that refuse or fail a request: the body is not read, the answer says
// why (naming the limit or setting). Their end, like any answer's, closes the
// exchange (exchange.ts).
import type { HttpContext } from './context.ts';
import type { HandlerExchange } from './exchange.ts';
import { sendText } from './answer.ts';

/** A 4xx (or 503) about the request itself, answered now. `extra` is [name, value, ...]. */
export function reject(x: HandlerExchange, status: number, reason: string, extra?: readonly string[]): void {
  x.stopReading(); // first: on HTTP/1.1 it decides the Connection header
  sendText(x, status, `${reason}\n`, extra);
}

/** 413: the body is over --max-body-size (declared, or counted while reading). */
export function rejectLargeBody(ctx: HttpContext, x: HandlerExchange): void {
  reject(x, 413, `request body exceeds the limit of ${ctx.config.maxBodySize} bytes (--max-body-size)`);
}

/**
 * An unexpected error: 500 (or the connection dropped if the answer had begun),
 * logged. It never takes the server down.
 */
export function fail(ctx: HttpContext, x: HandlerExchange, err: unknown): void {
  ctx.deps.logger.error({ err: (err as Error).message, reqId: x.requestId, uri: x.target }, 'request failed');
  let begun = x.headersSent;
  try {
    if (!begun) sendText(x, 500, 'internal error\n');
  } catch {
    begun = true; // the response object itself is unusable
  }
  if (begun) x.abort('reset');
}
