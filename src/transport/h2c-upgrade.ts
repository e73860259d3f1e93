// h2c by HTTP/1.1 Upgrade (RFC 7540 section 3.2). After `101 Switching Protocols`
// the answer to the upgrading request must go out as HTTP/2 stream 1, which Node's
// http2 cannot adopt. So the connection is bridged into the HTTP/2 server, and right
// after the client's preface and first SETTINGS frame, the bridge inserts a HEADERS
// frame for stream 1 that restates the original request. The server then answers
// stream 1 like any other stream. The header block uses only HPACK literals without
// indexing, so neither side's compression state changes.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** Headers that describe the HTTP/1.1 connection, not the request (RFC 7540 8.1.2.2). */
const CONNECTION_HEADERS = new Set(['connection', 'upgrade', 'http2-settings', 'host', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te']);
const PREFACE_LENGTH = 24;
const MAX_FRAME = 16_384;

/** Only bodiless requests are upgraded; others are answered over HTTP/1.1 (the server may ignore Upgrade). */
export function wantsH2cUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade?.toLowerCase();
  if (upgrade !== 'h2c' || req.headers['http2-settings'] === undefined) return false;
  // Only an origin-form target becomes an HTTP/2 :path; anything else is answered over HTTP/1.1.
  if (!req.url?.startsWith('/')) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

function hpackInteger(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00, ...hpackInteger(n.length, 7, 0)]), n, Buffer.from(hpackInteger(v.length, 7, 0)), v]);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** HEADERS (+ CONTINUATION) frames for stream 1 carrying the original request, ending the stream. */
export function requestAsHeadersFrames(req: IncomingMessage): Buffer {
  const fields: [string, string][] = [
    [':method', req.method ?? 'GET'],
    [':scheme', 'http'],
    [':path', req.url ?? '/'],
    [':authority', req.headers.host ?? ''],
  ];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!CONNECTION_HEADERS.has(name)) fields.push([name, raw[i + 1]!]);
  }
  const block = Buffer.concat(fields.map(([k, v]) => hpackLiteral(k, v)));
  const frames: Buffer[] = [];
  for (let offset = 0; offset < block.length || offset === 0; offset += MAX_FRAME) {
    const chunk = block.subarray(offset, offset + MAX_FRAME);
    const last = offset + MAX_FRAME >= block.length;
    const first = offset === 0;
    // HEADERS carries END_STREAM (0x1); the last frame of the block carries END_HEADERS (0x4).
    frames.push(frame(first ? 0x1 : 0x9, (first ? 0x1 : 0) | (last ? 0x4 : 0), 1, chunk));
    if (block.length === 0) break;
  }
  return Buffer.concat(frames);
}

/**
 * A duplex between the client socket and the HTTP/2 session: reads pass through,
 * except that `inject` goes in after the client preface and its first frame.
 */
export function bridgeWithInjection(socket: Socket, head: Buffer, inject: Buffer): Duplex {
  let pending: Buffer | null = head;
  let injected = false;
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
  const push = (chunk: Buffer) => {
    if (!bridge.push(chunk)) socket.pause();
  };
  const onData = (chunk: Buffer) => {
    if (injected) {
      push(chunk);
      return;
    }
    pending = pending === null || pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    // Wait for the preface (24 bytes) and the complete first frame (a SETTINGS frame).
    if (pending.length < PREFACE_LENGTH + 9) return;
    const firstFrameLength = pending.readUIntBE(PREFACE_LENGTH, 3);
    // Nothing larger than the default maximum frame size may come before SETTINGS
    // are agreed, so this bounds what is held here (and the copies above) to 16 KiB.
    if (firstFrameLength > MAX_FRAME) {
      socket.destroy();
      return;
    }
    const firstFrameEnd = PREFACE_LENGTH + 9 + firstFrameLength;
    if (pending.length < firstFrameEnd) return;
    injected = true;
    push(pending.subarray(0, firstFrameEnd));
    push(inject);
    if (pending.length > firstFrameEnd) push(pending.subarray(firstFrameEnd));
    pending = null;
  };
  socket.on('data', onData);
  socket.on('end', () => bridge.push(null));
  socket.on('close', () => bridge.destroy());
  socket.on('error', (err) => bridge.destroy(err));
  if (head.length > 0) {
    pending = Buffer.alloc(0);
    onData(head);
  }
  // The bridge stands in for the socket; expose its addresses to the session.
  Object.defineProperties(bridge, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
    remoteFamily: { get: () => socket.remoteFamily },
    localAddress: { get: () => socket.localAddress },
    localPort: { get: () => socket.localPort },
    encrypted: { value: false },
  });
  socket.resume();
  return bridge;
}
