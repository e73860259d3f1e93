// Lingering close on HTTP/1.1. An early answer (413, 400, 417 ...) is written while
// the client is still sending its body, and node:http then closes the connection.
// Closing a socket with unread bytes makes the kernel send a reset, and a client that
// sends its whole body before reading (a buffering proxy such as nginx does) gets
// EPIPE and never sees the answer: nginx turns it into a 502. So after such an
// answer the connection is half-closed (our FIN follows the answer) and the rest of
// the body is read and discarded, for a bounded time and size, before it closes.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** At most this long, and this many bytes, are read and thrown away after the answer. */
export const LINGER_MS = 2000;
export const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * node:http ends a connection after an answer that says `Connection: close` with
 * `socket.destroySoon()`. On this socket that lingers instead when the request being
 * answered was not read to its end (`current()` gives that request).
 */
export function lingerOnEarlyClose(socket: Socket, current: () => IncomingMessage | undefined): void {
  const destroySoon = socket.destroySoon.bind(socket);
  let lingering = false;
  socket.destroySoon = () => {
    const req = current();
    if (lingering) return;
    if (req === undefined || req.complete || socket.destroyed) {
      destroySoon();
      return;
    }
    lingering = true;
    socket.end(); // the answer is written; the FIN follows it
    // node:http's parser reads on, discarding the body (as it does for a request the
    // app did not read), once the request is flowing again.
    req.removeAllListeners('data');
    req.resume();
    const start = socket.bytesRead;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    const meter = setInterval(() => {
      if (socket.bytesRead - start > LINGER_BYTES) socket.destroy();
    }, 50);
    socket.once('close', () => {
      clearTimeout(timer);
      clearInterval(meter);
    });
  };
}
