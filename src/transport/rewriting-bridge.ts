// A duplex that stands in for a client socket in front of node:http2 and rewrites
// the first bytes the client sends, then steps aside. node:http2 takes a connection
// as it is; two quirks need its first bytes changed: the h2c upgrade (the upgrading
// request must become stream 1) and a first request without :authority (which
// nghttp2 would reset unseen). Writes from the session go to the socket unchanged.
import { Duplex } from 'node:stream';

/**
 * Called with each chunk the client sends (and first with `initial`, when not empty)
 * until it returns true. It holds what it needs and `pass`es on what the session
 * should read; once it returns true, bytes go through as they come.
 */
export type Rewrite = (chunk: Buffer, pass: (bytes: Buffer) => void, bridge: Duplex) => boolean;

type SocketLike = Duplex & {
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  localAddress?: string;
  localPort?: number;
  encrypted?: boolean;
};

/** The bridge over `socket`; `initial` are bytes already read from it (and not put back). */
export function rewritingBridge(socket: SocketLike, initial: Buffer, rewrite: Rewrite): Duplex {
  let rewriting = true;
  const bridge = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  // Backpressure: the socket waits while the session has not read what it was given.
  const pass = (bytes: Buffer) => {
    if (bytes.length > 0 && !bridge.push(bytes)) socket.pause();
  };
  const onData = (chunk: Buffer) => {
    if (!rewriting) pass(chunk);
    else if (rewrite(chunk, pass, bridge)) rewriting = false;
  };
  socket.on('data', onData);
  socket.on('end', () => bridge.push(null));
  socket.on('close', () => bridge.destroy());
  socket.on('error', (err) => bridge.destroy(err));
  if (initial.length > 0) onData(initial);
  // The session reads the connection's addresses (and whether it is TLS) from its socket.
  Object.defineProperties(bridge, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
    remoteFamily: { get: () => socket.remoteFamily },
    localAddress: { get: () => socket.localAddress },
    localPort: { get: () => socket.localPort },
    encrypted: { value: socket.encrypted === true },
  });
  socket.resume();
  return bridge;
}
