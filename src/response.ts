// Response helpers shared by every answer: bodiless statuses, interim (1xx)
// responses on HTTP/1.1 and HTTP/2, and a delay that a leaving client cancels.
import type { OutgoingHttpHeader, ServerResponse } from 'node:http';

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
  else res.writeEarlyHints({});
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
