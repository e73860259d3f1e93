// What only HTTP/2 has, in one place: node:http2's compatibility objects pass for
// node:http's, so whether a request is HTTP/2, whether its stream may carry a body,
// interim answers on the stream, and how a stream ends (refused, or cancelled once
// its answer is out) are asked here and nowhere else.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Whether the request arrived on an HTTP/2 stream (h2, h2c, or an h2c upgrade). */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/** An HTTP/2 request has a body unless its HEADERS frame ended the stream; no header says so. */
export function mayHaveBody(req: IncomingMessage): boolean {
  return (
    isHttp2(req) &&
    (req as IncomingMessage & { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false
  );
}

/** An interim (1xx) answer as an informational HEADERS frame; false when the answer is not on a stream. */
export function interimOnStream(res: ServerResponse, code: number): boolean {
  const h2stream = (res as ServerResponse & { stream?: { additionalHeaders(h: Record<string, number>): void } }).stream;
  if (h2stream === undefined) return false;
  h2stream.additionalHeaders({ ':status': code });
  return true;
}

/** The parts of a node:http2 server stream used here (the compatibility response's `stream`). */
export type H2Stream = {
  close(code?: number): void;
  pause(): void;
  destroyed: boolean;
  writableFinished: boolean;
  state: { localClose?: number };
  session?: {
    ping(callback: () => void): boolean;
    close(): void;
    destroy(): void;
    closed: boolean;
    destroyed: boolean;
  };
  once(event: 'finish', f: () => void): void;
};
const streamOf = (res: ServerResponse) => (res as ServerResponse & { stream?: H2Stream }).stream;
// RFC 9113 suggests NO_ERROR for "stop sending, the answer is complete", but
// node:http2 then keeps the stream open until the client finishes its side; CANCEL
// ends it at once on both ends, after the complete answer has gone out.
const NGHTTP2_CANCEL = 8;
const NGHTTP2_REFUSED_STREAM = 7;
/** The longest an answer may take to reach the client before its stream is cancelled anyway. */
const ANSWER_DELIVERY_MS = 2000;

/**
 * Cancels the stream once the client has the whole answer. The stream's 'finish'
 * only says node:http2 holds the answer, not that nghttp2 has sent it: a RST_STREAM
 * submitted then goes out first and the END_STREAM (often HEADERS and DATA too) is
 * dropped, so the client saw a reset where a 431 or 413 was logged (on h2c, where a
 * socket write is often still in progress). So: wait until the END_STREAM frame is
 * written (`state.localClose`), then for a PING round trip, so the reset arrives in
 * a later read than the answer: clients such as curl 7.88 drop an answer whose
 * stream is reset within the same read. A client that never answers the PING, or
 * never grants the window the answer needs, is cancelled after ANSWER_DELIVERY_MS.
 */
function cancelAfterAnswer(stream: H2Stream): void {
  let cancelled = false;
  const cancel = () => {
    if (cancelled) return;
    cancelled = true;
    clearTimeout(deadline);
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  };
  const deadline = setTimeout(cancel, ANSWER_DELIVERY_MS).unref();
  const whenSent = (turn: number) => {
    if (cancelled) return;
    if (stream.destroyed) {
      cancel();
      return;
    }
    if (stream.state.localClose !== 1) {
      // Usually within a turn or two of the event loop; then polled gently, not busily.
      if (turn < 8) setImmediate(whenSent, turn + 1);
      else setTimeout(whenSent, 5, turn + 1);
      return;
    }
    try {
      // False (or the callback with an error) when too many PINGs are unanswered.
      if (stream.session?.ping(cancel) !== true) cancel();
    } catch {
      cancel(); // the session is closing
    }
  };
  whenSent(0);
}

/**
 * The answer does not need the rest of the request body, so none of it is read:
 * HTTP/1.1 closes the connection after the answer (node:http would otherwise read
 * and discard the body to keep the connection), HTTP/2 ends the stream with
 * RST_STREAM after the answer, which tells the client to stop sending; until then
 * no flow-control window is granted, as nothing is read.
 */
export function stopReading(req: IncomingMessage, res: ServerResponse): void {
  const stream = streamOf(res);
  req.pause();
  if (stream === undefined) {
    res.shouldKeepAlive = false;
    return;
  }
  stopReadingStream(stream);
}

/** stopReading on a stream answered through the stream API: nothing more is read, CANCEL once the answer is out. */
export function stopReadingStream(stream: H2Stream): void {
  stream.pause();
  // The stream's own 'finish' (our side done): the compatibility response's 'finish'
  // waits for the client's side too, which is what must not be waited for here.
  if (stream.writableFinished) cancelAfterAnswer(stream);
  else stream.once('finish', () => cancelAfterAnswer(stream));
}

/** HTTP/2: cancel a stream now, its answer cut short (CANCEL: the client stops sending too). */
export function cancelStream(res: ServerResponse): void {
  const stream = streamOf(res);
  if (stream !== undefined) cancelNow(stream);
}

/** cancelStream on a stream answered through the stream API. */
export function cancelNow(stream: H2Stream): void {
  if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
}

/** HTTP/2: refuse a stream before any processing, so the client may retry it elsewhere. */
export function refuseStream(res: ServerResponse): void {
  streamOf(res)?.close(NGHTTP2_REFUSED_STREAM);
}

/** refuseStream on a stream answered through the stream API. */
export function refuseNow(stream: H2Stream): void {
  stream.close(NGHTTP2_REFUSED_STREAM);
}

/** HTTP/2: reset the stream now with `code` (the fault control); the session lives on. */
export function resetStream(res: ServerResponse, code: number): void {
  const stream = streamOf(res);
  if (stream !== undefined) resetNow(stream, code);
}

/** resetStream on a stream answered through the stream API. */
export function resetNow(stream: H2Stream, code: number): void {
  if (!stream.destroyed) stream.close(code);
}

/** HTTP/2: the connection goes now, every stream on it with it (no GOAWAY). */
export function destroySession(res: ServerResponse): void {
  const stream = streamOf(res);
  if (stream !== undefined) destroySessionOf(stream);
}

/** destroySession for a stream answered through the stream API. */
export function destroySessionOf(stream: H2Stream): void {
  const { session } = stream;
  if (session !== undefined && !session.destroyed) session.destroy();
}

/** HTTP/2: GOAWAY (NO_ERROR) now; open streams finish, then the connection closes. */
export function closeSession(res: ServerResponse): void {
  const stream = streamOf(res);
  if (stream !== undefined) closeSessionOf(stream);
}

/** closeSession for a stream answered through the stream API. */
export function closeSessionOf(stream: H2Stream): void {
  const { session } = stream;
  if (session !== undefined && !session.closed) session.close();
}
