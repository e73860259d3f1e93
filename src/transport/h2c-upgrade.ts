// h2c by HTTP/1.1 Upgrade (RFC 7540 section 3.2). After `101 Switching Protocols`
// the answer to the upgrading request must go out as HTTP/2 stream 1, which Node's
// http2 cannot adopt. So the connection is bridged into the HTTP/2 server, and right
// after the client's preface and first SETTINGS frame, the bridge inserts a HEADERS
// frame for stream 1 that restates the original request. The server then answers
// stream 1 like any other stream. The header block uses only HPACK literals without
// indexing, so neither side's compression state changes.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  CONTINUATION,
  END_HEADERS,
  END_STREAM,
  FRAME_HEADER,
  HEADERS,
  MAX_FRAME,
  PREFACE_LENGTH,
  frame,
} from './h2-frames.ts';
import { rewritingBridge } from './rewriting-bridge.ts';

/** Headers that describe the HTTP/1.1 connection, not the request (RFC 7540 8.1.2.2). */
const CONNECTION_HEADERS = new Set([
  'connection',
  'upgrade',
  'http2-settings',
  'host',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
]);

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
  return Buffer.concat([
    Buffer.from([0x00, ...hpackInteger(n.length, 7, 0)]),
    n,
    Buffer.from(hpackInteger(v.length, 7, 0)),
    v,
  ]);
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
    // HEADERS carries END_STREAM; the last frame of the block carries END_HEADERS.
    frames.push(frame(first ? HEADERS : CONTINUATION, (first ? END_STREAM : 0) | (last ? END_HEADERS : 0), 1, chunk));
    if (block.length === 0) break;
  }
  return Buffer.concat(frames);
}

/**
 * The connection as node:http2 should read it: what the client sends passes through,
 * except that `inject` goes in after the client preface and its first frame.
 */
export function bridgeWithInjection(socket: Socket, head: Buffer, inject: Buffer): Duplex {
  let pending: Buffer = Buffer.alloc(0);
  return rewritingBridge(socket, head, (chunk, pass) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    // Wait for the preface (24 bytes) and the complete first frame (a SETTINGS frame).
    if (pending.length < PREFACE_LENGTH + FRAME_HEADER) return false;
    const firstFrameLength = pending.readUIntBE(PREFACE_LENGTH, 3);
    // Nothing larger than the default maximum frame size may come before SETTINGS
    // are agreed, so this bounds what is held here (and the copies above) to 16 KiB.
    if (firstFrameLength > MAX_FRAME) {
      socket.destroy();
      return true;
    }
    const firstFrameEnd = PREFACE_LENGTH + FRAME_HEADER + firstFrameLength;
    if (pending.length < firstFrameEnd) return false;
    pass(pending.subarray(0, firstFrameEnd));
    pass(inject);
    pass(pending.subarray(firstFrameEnd));
    return true;
  });
}
