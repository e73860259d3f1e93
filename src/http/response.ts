// Response helpers shared by every answer: bodiless statuses, interim (1xx)
// responses on HTTP/1.1 and HTTP/2, and a delay that a leaving client cancels.
import { STATUS_CODES, type IncomingMessage, type OutgoingHttpHeader, type ServerResponse } from 'node:http';

/** 204 and 304 carry no body: HTTP/1.1 would drop one silently, HTTP/2 resets the stream. */
export function isBodiless(status: number): boolean {
  return status === 204 || status === 304;
}

export function endWithoutBody(res: ServerResponse, status: number, headers: OutgoingHttpHeader[]): void {
  const kept: OutgoingHttpHeader[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'Content-Length' && headers[i] !== 'Content-Type') kept.push(headers[i]!, headers[i + 1]!);
  }
  res.writeHead(status, kept as string[]);
  res.end();
}

/**
 * A 1xx response ahead of the final one. node:http has a method per code; the
 * HTTP/2 compatibility response lacks writeProcessing, so HTTP/2 sends the
 * informational HEADERS frame on the stream directly.
 */
export function sendInterim(res: ServerResponse, code: number): void {
  const h2stream = (res as ServerResponse & { stream?: { additionalHeaders(h: Record<string, number>): void } }).stream;
  if (h2stream !== undefined) h2stream.additionalHeaders({ ':status': code });
  else if (code === 100) res.writeContinue();
  else if (code === 102) res.writeProcessing();
  // node:http sends a 103 only with a Link hint; a preconnect to this same origin
  // is the one hint that changes nothing for a browser (it is connected already).
  else res.writeEarlyHints({ link: '</>; rel=preconnect' });
}

/** Waits, unless the client leaves first. */
export function delay(res: ServerResponse, ms: number, then: () => void): void {
  const timer = setTimeout(() => {
    res.off('close', cancel);
    then();
  }, ms);
  const cancel = () => clearTimeout(timer);
  res.once('close', cancel);
}

/**
 * A complete HTTP/1.1 answer as bytes, for sockets node:http no longer (or not yet)
 * owns: parser errors, refused upgrades. It always closes the connection.
 */
export function plainAnswer(status: number, body: string, extra = ''): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n${extra}Connection: close\r\n\r\n${body}`;
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

/** The size of a header list as the HTTP/1.1 head it stands for: `name: value\r\n` per field. */
export function headerListSize(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}
