// What is known about a connection before HTTP starts: the PROXY protocol header
// and the first bytes (to tell an HTTP/2 preface from HTTP/1.1). The front stage
// reads them, puts back whatever belongs to the next protocol, and hands on.
import type { Socket } from 'node:net';
import type { ConnectionFacts } from '../core/facts.ts';
import { parseProxyHeader, type ProxyInfo } from './proxy-protocol.ts';

/**
 * What the front stage knows about one connection, kept as a property of every
 * socket object that stands for it (the TCP socket, the TLS socket over it, the h2c
 * bridge), so it is also reachable through the proxy object HTTP/2 puts in front of
 * a session's socket.
 */
export interface FrontState {
  /** What the HTTP stage is told about the connection; filled in by the stages below. */
  facts: ConnectionFacts;
  /**
   * One deadline for the whole front stage: PROXY header, TLS handshake and the
   * first request (or first HTTP/2 stream) must all arrive within --headers-timeout
   * of the connect, so no stage can restart the clock. Null once it has passed.
   */
  deadline: NodeJS.Timeout | null;
  /** Whether the deadline fired; the connection is being closed. */
  expired: boolean;
}

const FRONT = Symbol('echo-server.front');

type Tagged = {
  [FRONT]?: FrontState;
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  stream?: Tagged;
};

/** Starts the front stage of a new connection; `expire` runs if its deadline passes. */
export function beginFront(socket: Socket, timeoutMs: number, expire: () => void): FrontState {
  const front: FrontState = {
    facts: { peerAddress: socket.remoteAddress ?? '', peerPort: socket.remotePort, proxy: null, tls: null },
    deadline: null,
    expired: false,
  };
  front.deadline = setTimeout(() => {
    front.deadline = null;
    front.expired = true;
    expire();
  }, timeoutMs);
  socket.once('close', () => clearTimeout(front.deadline ?? undefined));
  (socket as Tagged)[FRONT] = front;
  return front;
}

/**
 * A connection that leaves HTTP/1.1 for HTTP/2 (Upgrade: h2c) after earlier
 * requests, whose front stage is therefore over, begins a new one: the new
 * protocol's first stream must arrive within `timeoutMs` of the switch, or the
 * connection would sit on a --max-connections slot until --idle-timeout. A front
 * stage still running keeps its clock.
 */
export function reopenFront(front: FrontState, timeoutMs: number, expire: () => void): void {
  if (front.deadline !== null || front.expired) return;
  front.deadline = setTimeout(() => {
    front.deadline = null;
    front.expired = true;
    expire();
  }, timeoutMs);
}

/** Marks another socket object (TLS socket, h2c bridge) as the same connection. */
export function shareFront(from: FrontState, to: object): void {
  (to as Tagged)[FRONT] = from;
}

export function frontOf(socket: object): FrontState | undefined {
  return (socket as Tagged)[FRONT];
}

/** The first request or stream has arrived: the front stage is over. */
export function frontDone(front: FrontState | undefined): void {
  if (front?.deadline != null) {
    clearTimeout(front.deadline);
    front.deadline = null;
  }
}

/**
 * The facts of the connection a request arrived on: the socket of an HTTP/1.1
 * request, or the session's socket for HTTP/2 (a TLS socket, a TCP socket or the
 * h2c bridge, all tagged by the front stage). A socket the front stage never saw
 * (none in production) gets facts from its own addresses.
 */
export function factsOf(req: { socket: object; stream?: { session?: { socket?: object } } }): ConnectionFacts {
  const s = (req.stream?.session?.socket ?? req.socket) as Tagged;
  // node:http2 wraps a stream that is not a socket (the h2c bridge) in a socket of its
  // own, which keeps the bridge as `stream`.
  const front = s[FRONT] ?? s.stream?.[FRONT];
  return front?.facts ?? { peerAddress: s.remoteAddress ?? '', peerPort: s.remotePort, proxy: null, tls: null };
}

/**
 * Reads from `socket` until `parse` returns a result, then puts the unused bytes
 * back and leaves the socket paused. Fails if the peer closes, or when more than
 * `maxBytes` arrive without a result; the front deadline bounds the time.
 */
export function readPrefix<T>(
  socket: Socket,
  maxBytes: number,
  parse: (buf: Buffer) => { value: T; used: number } | null,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | null, value?: T) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      if (err) reject(err);
      else resolve(value as T);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let result;
      try {
        result = parse(buf);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (result === null) {
        if (buf.length > maxBytes) done(new Error(`no usable header within the first ${maxBytes} bytes`));
        return;
      }
      socket.pause();
      if (result.used < buf.length) socket.unshift(buf.subarray(result.used));
      done(null, result.value);
    };
    const onClose = () => done(new Error('connection closed before its first bytes arrived'));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume(); // an earlier stage may have left it paused
  });
}

/** Reads and records a PROXY protocol header (v2 is at most 16 + 65535 bytes). */
export async function acceptProxyHeader(socket: Socket, front: FrontState): Promise<ProxyInfo> {
  const info = await readPrefix(socket, 16 + 65_535, (buf) => {
    const r = parseProxyHeader(buf);
    return r === null ? null : { value: r.info, used: r.length };
  });
  front.facts.proxy = info;
  return info;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Whether the connection starts with the HTTP/2 client preface (h2c with prior knowledge). */
export function sniffHttp2Preface(socket: Socket): Promise<boolean> {
  return readPrefix(socket, PREFACE.length, (buf) => {
    const n = Math.min(buf.length, PREFACE.length);
    const matches = buf.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (!matches) return { value: false, used: 0 };
    return n === PREFACE.length ? { value: true, used: 0 } : null;
  });
}
