// Reading a request body within the limits, for the echo (the operations endpoints
// never read one, see ops-routes.ts): --max-body-size (413 above it, declared or
// counted), and --request-timeout on HTTP/2 too.
import type { BodyResult } from '../echo/model.ts';
import { EMPTY_BODY } from '../echo/model.ts';
import { BodyTooLarge, readBody } from './body-reader.ts';
import type { HttpContext } from './context.ts';
import type { HandlerExchange } from './exchange.ts';
import { fail, rejectLargeBody } from './refusals.ts';
import { sendText } from './answer.ts';

/** The declared body length: Content-Length, -1 when unknown (chunked, or a stream left open), 0 for none. */
export function declaredLength(x: HandlerExchange): number {
  const { scan } = x;
  return scan.contentLength !== undefined ? Number(scan.contentLength) : scan.chunked || x.bodyMayFollow ? -1 : 0;
}

/**
 * Reads the body (keeping its first `keep` bytes), then runs `then`. A body
 * declared over the limit is refused before anything is read.
 */
export function readRequestBody(
  ctx: HttpContext,
  x: HandlerExchange,
  declared: number,
  keep: number,
  then: (body: BodyResult) => void,
): void {
  if (declared > ctx.config.maxBodySize) {
    rejectLargeBody(ctx, x);
    return;
  }
  const run = (body: BodyResult) => {
    try {
      then(body);
    } catch (err) {
      fail(ctx, x, err); // `then` runs from a promise, outside the handler's guard
    }
  };
  if (declared === 0) {
    run(EMPTY_BODY);
    return;
  }
  bodyDeadline(ctx, x);
  readBody(x.body, ctx.config.maxBodySize, keep).then(
    (body) => {
      x.bytesIn = body.bytes;
      run(body);
    },
    (err: unknown) => {
      if (err instanceof BodyTooLarge) rejectLargeBody(ctx, x);
      else x.abort('reset'); // the client went away mid-body: nobody to answer
    },
  );
}

/**
 * --request-timeout wherever the protocol's parser does not enforce it: a body that
 * trickles (or never ends) would otherwise hold its stream, and a place in the
 * in-flight budget, for as long as the connection lives.
 */
function bodyDeadline(ctx: HttpContext, x: HandlerExchange): void {
  const { config } = ctx;
  x.bodyDeadline(Math.max(0, config.requestTimeoutMs - (performance.now() - x.start)), () => {
    ctx.log(
      'warn',
      { peer: x.facts.peerAddress, limitMs: config.requestTimeoutMs },
      'bad request: request not received in time (--request-timeout)',
    );
    if (x.headersSent) {
      x.abort('reset');
      return;
    }
    x.stopReading();
    sendText(x, 408, 'request not received in time (--request-timeout)\n');
  });
}
