// How much of a request is read and how its stream ends, on HTTP/1.1 and HTTP/2:
// not reading a body the answer does not need, refusing an HTTP/2 stream, and a
// delay that a leaving client cancels.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Waits, unless the client leaves first. */
export function delay(res: ServerResponse, ms: number, then: () => void): void {
  const timer = setTimeout(() => {
    res.off('close', cancel);
    then();
  }, ms);
  const cancel = () => clearTimeout(timer);
  res.once('close', cancel);
}

type H2Stream = { close(code?: number): void; destroyed: boolean; writableFinished: boolean; once(event: 'finish', f: () => void): void };
const streamOf = (res: ServerResponse) => (res as ServerResponse & { stream?: H2Stream }).stream;
// RFC 9113 suggests NO_ERROR for "stop sending, the answer is complete", but
// node:http2 then keeps the stream open until the client finishes its side; CANCEL
// ends it at once on both ends, after the complete answer has gone out.
const NGHTTP2_CANCEL = 8;
const NGHTTP2_REFUSED_STREAM = 7;

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
  // The stream's own 'finish' (our side done): the compatibility response's 'finish'
  // waits for the client's side too, which is what must not be waited for here.
  const close = () => { if (!stream.destroyed) stream.close(NGHTTP2_CANCEL); };
  if (stream.writableFinished) close();
  else stream.once('finish', close);
}

/** HTTP/2: refuse a stream before any processing, so the client may retry it elsewhere. */
export function refuseStream(res: ServerResponse): void {
  streamOf(res)?.close(NGHTTP2_REFUSED_STREAM);
}
