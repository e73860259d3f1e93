// How an HTTP/2 stream is stopped, in one place, for the two answer ports on
// node:http2's stream API (adapters/http2/exchange.ts, adapters/grpc/exchange.ts):
// refused, cancelled once its answer is out, cancelled or reset now, or its session
// closed or destroyed.

/** The parts of a node:http2 server stream used here. */
export type H2Stream = {
  close(code?: number): void;
  pause(): void;
  destroy(): void;
  closed: boolean;
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
    if (stream.destroyed) return;
    // Closed already: both sides' END_STREAM went through and nghttp2 closed the
    // stream, which node:http2 then destroys only once its request side is read to
    // the end, and a stream that stopped reading never is (an answer with trailers,
    // gRPC's, gets there before the PING). Nothing is left to reset: it goes now.
    if (stream.closed) stream.destroy();
    else stream.close(NGHTTP2_CANCEL);
  };
  const deadline = setTimeout(cancel, ANSWER_DELIVERY_MS).unref();
  const whenSent = (turn: number) => {
    if (cancelled) return;
    if (stream.destroyed || stream.closed) {
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
 * The answer does not need the rest of the request body, so none of it is read: the
 * stream ends with RST_STREAM CANCEL after the answer, which tells the client to stop
 * sending; until then no flow-control window is granted, as nothing is read.
 */
export function stopReadingStream(stream: H2Stream): void {
  stream.pause();
  // The stream's own 'finish' (our side done), not its 'close', which waits for the
  // client's side too: that is what must not be waited for here.
  if (stream.writableFinished) cancelAfterAnswer(stream);
  else stream.once('finish', () => cancelAfterAnswer(stream));
}

/** Cancels the stream now, its answer cut short (CANCEL: the client stops sending too). */
export function cancelNow(stream: H2Stream): void {
  if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
}

/** Refuses the stream before any processing, so the client may retry it elsewhere. */
export function refuseNow(stream: H2Stream): void {
  stream.close(NGHTTP2_REFUSED_STREAM);
}

/** Resets the stream now with `code` (the fault control); the session lives on. */
export function resetNow(stream: H2Stream, code: number): void {
  if (!stream.destroyed) stream.close(code);
}

/** The connection goes now, every stream on it with it (no GOAWAY). */
export function destroySessionOf(stream: H2Stream): void {
  const { session } = stream;
  if (session !== undefined && !session.destroyed) session.destroy();
}

/** GOAWAY (NO_ERROR) now; open streams finish, then the connection closes. */
export function closeSessionOf(stream: H2Stream): void {
  const { session } = stream;
  if (session !== undefined && !session.closed) session.close();
}
