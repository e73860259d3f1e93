// What is known about a connection before HTTP starts: the PROXY protocol header
// and the first bytes (to tell an HTTP/2 preface from HTTP/1.1). The front stage
// reads them, puts back whatever belongs to the next protocol, and hands on.
import type { Socket } from 'node:net';
import { parseProxyHeader, type ProxyInfo } from './proxy-protocol.ts';

// Kept as a property of the socket (not in a WeakMap) so it is also reachable
// through the proxy object HTTP/2 puts in front of a session's socket.
const PROXY_INFO = Symbol('echo-server.proxyInfo');
/** Set on the stand-in for a socket that was upgraded to h2c; points to the real one. */
export const UPGRADED_FROM = Symbol('echo-server.upgradedFrom');

type Tagged = Socket & { [PROXY_INFO]?: ProxyInfo; [UPGRADED_FROM]?: Socket; _parent?: Tagged; stream?: Tagged };

/**
 * The socket a request really arrived on (net.Socket or TLSSocket), for HTTP/1.1,
 * HTTP/2 (through the session), and h2c upgraded through a bridge.
 */
export function connectionSocket(req: { socket: Socket; stream?: { session?: { socket?: Socket } } }): Socket {
  const s = (req.stream?.session?.socket ?? req.socket) as Tagged;
  return s.stream?.[UPGRADED_FROM] ?? s[UPGRADED_FROM] ?? s;
}

/** The PROXY header of a connection; works for the raw socket and a TLS socket over it. */
export function proxyInfoOf(socket: Socket): ProxyInfo | null {
  const s = socket as Tagged;
  return s[PROXY_INFO] ?? s._parent?.[PROXY_INFO] ?? null;
}

/**
 * Reads from `socket` until `parse` returns a result, then puts the unused bytes
 * back and leaves the socket paused. Fails after `timeoutMs` or if the peer closes.
 */
export function readPrefix<T>(socket: Socket, timeoutMs: number, parse: (buf: Buffer) => { value: T; used: number } | null): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | null, value?: T) => {
      clearTimeout(timer);
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
      if (result === null) return;
      socket.pause();
      if (result.used < buf.length) socket.unshift(buf.subarray(result.used));
      done(null, result.value);
    };
    const onClose = () => done(new Error('connection closed before its first bytes arrived'));
    const timer = setTimeout(() => done(new Error(`nothing usable received within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume(); // an earlier stage may have left it paused
  });
}

/** Reads and records a PROXY protocol header. */
export async function acceptProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyInfo> {
  const info = await readPrefix(socket, timeoutMs, (buf) => {
    const r = parseProxyHeader(buf);
    return r === null ? null : { value: r.info, used: r.length };
  });
  (socket as Tagged)[PROXY_INFO] = info;
  return info;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Whether the connection starts with the HTTP/2 client preface (h2c with prior knowledge). */
export function sniffHttp2Preface(socket: Socket, timeoutMs: number): Promise<boolean> {
  return readPrefix(socket, timeoutMs, (buf) => {
    const n = Math.min(buf.length, PREFACE.length);
    const matches = buf.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (!matches) return { value: false, used: 0 };
    return n === PREFACE.length ? { value: true, used: 0 } : null;
  });
}

