// The answers that refuse or fail a request: the body is not read, the answer says
// why (naming the limit or setting), and the exchange is recorded like any other.
import type { HttpContext } from './context.ts';
import type { HttpExchange } from './exchange.ts';
import { stopReading } from '../adapters/http2/stream.ts';
import { sendText } from './respond.ts';

/** A 4xx (or 503) about the request itself, answered now and completed. `extra` is [name, value, ...]. */
export function reject(ctx: HttpContext, x: HttpExchange, status: number, reason: string, extra?: readonly string[]): void {
  stopReading(x.req, x.res); // first: on HTTP/1.1 it decides the Connection header
  sendText(x, status, `${reason}\n`, extra);
  ctx.complete(x, false);
}

/** 413: the body is over --max-body-size (declared, or counted while reading). The caller completes. */
export function rejectLargeBody(ctx: HttpContext, x: HttpExchange): void {
  stopReading(x.req, x.res);
  sendText(x, 413, `request body exceeds the limit of ${ctx.config.maxBodySize} bytes (--max-body-size)\n`);
}

/**
 * An unexpected error: 500 (or the connection dropped if the answer had begun),
 * logged, and the exchange recorded. It never takes the server down.
 */
export function fail(ctx: HttpContext, x: HttpExchange, err: unknown): void {
  ctx.deps.logger.error({ err: (err as Error).message, reqId: x.requestId, uri: x.uri }, 'request failed');
  let begun = x.res.headersSent;
  try {
    if (!begun) sendText(x, 500, 'internal error\n');
  } catch {
    begun = true; // the response object itself is unusable
  }
  if (begun) x.res.destroy();
  ctx.complete(x, begun);
}
