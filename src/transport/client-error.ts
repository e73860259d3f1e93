// A request node:http could not parse, or one too slow or too large, on an HTTP/1.1
// connection. The transport decides *when* bytes may be written (never in the middle
// of a response: a malformed request can arrive pipelined behind one still being
// answered, and its answer then waits for every earlier one); the HTTP stage decides
// *what* is answered, logged and counted (ClientErrorAnswer).
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ClientErrorAnswer {
  /**
   * The complete HTTP/1.1 answer (bytes, closing the connection) to a request the
   * parser refused with `code`; `current` is the response the app was preparing for
   * the request the error is about, or null when the app never saw that request.
   */
  clientError(code: string | undefined, current: ServerResponse | null, peer: string): string;
}

/**
 * The response node:http is writing on a socket, if any. node:http keeps it as
 * `_httpMessage` and its own client-error handler consults it for the same reason:
 * bytes written while a response is under way would corrupt that response.
 */
export function responseInProgress(socket: Socket): ServerResponse | null {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

/** Answers (or just closes) a connection whose next request node:http refused. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket, answer: ClientErrorAnswer): void {
  answerRefusal(err.code, socket, answer);
}

/**
 * The 408 of a connection whose first request did not arrive within the front
 * deadline (--headers-timeout of the connect), sent under the same rules.
 */
export function answerRequestTimeout(socket: Socket, answer: ClientErrorAnswer): void {
  answerRefusal(REQUEST_TIMEOUT, socket, answer);
}

/** node:http's code for a request not received in time: the app answers it 408. */
const REQUEST_TIMEOUT = 'ERR_HTTP_REQUEST_TIMEOUT';

function answerRefusal(code: string | undefined, socket: Socket, answer: ClientErrorAnswer): void {
  if (code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const current = responseInProgress(socket);
  if (current !== null && !current.req.complete) {
    // The error is about the request being answered (its body was malformed, cut or
    // too slow): answer it now, unless its response has begun; then only closing is left.
    if (current.headersSent) {
      socket.destroy();
      return;
    }
  } else if (current !== null) {
    // About a later, pipelined request: its answer waits for every earlier one.
    if (code === 'HPE_CLOSED_CONNECTION') return; // data after `Connection: close`: ignored, the connection ends with the response
    const retry = () => setImmediate(() => answerRefusal(code, socket, answer));
    current.once('finish', retry);
    current.once('close', () => {
      current.off('finish', retry);
      if (!current.writableFinished) socket.destroy();
    });
    return;
  }
  if (code === 'HPE_CLOSED_CONNECTION') {
    socket.destroySoon();
    return;
  }
  socket.end(answer.clientError(code, current, socket.remoteAddress ?? ''));
}
