// HTTP/2 requests without `:authority` and Host. RFC 9113 (section 8.3.1) calls them
// malformed, and nghttp2 resets them with PROTOCOL_ERROR before node:http2 sees
// them: no answer, no log line, no count. HAProxy's `option httpchk` over `proto h2`
// sends exactly that, so the backend was marked DOWN. Health checks open a
// connection per check, so the first request of every HTTP/2 connection is looked
// at here before node:http2 takes the connection: when its header block names
// neither, an `:authority` placeholder is put in front of it, which the HTTP/2 stage
// removes again before the app sees the request (so the echo shows what was sent).
// Only the first block is read: it is decoded with an empty HPACK dynamic table,
// which needs no state; later requests on the connection go to nghttp2 as they came.

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

/** What the HTTP/2 stage strips again: no client has reason to send it. */
export const PLACEHOLDER_AUTHORITY = 'authority-added-by-echo-server.invalid';

const PADDED = 0x8;
const PRIORITY = 0x20;
/** The HPACK dynamic table size a client may use before our SETTINGS are acknowledged. */
const TABLE_SIZE = 4096;
/** How long a client may stay silent before the connection is bridged (so the server's SETTINGS go out). */
const SILENT_CLIENT_MS = 100;
/** The first request's header block is read up to this size; a larger one is passed on as it is. */
const MAX_BLOCK = 256 * 1024;

// RFC 7541, Appendix B: the codes of the characters of ":authority" and "host".
const HUFFMAN: Record<string, [number, number]> = {
  ':': [0b1011100, 7],
  a: [0b00011, 5],
  u: [0b101101, 6],
  t: [0b01001, 5],
  h: [0b100111, 6],
  o: [0b00111, 5],
  r: [0b101100, 6],
  i: [0b00110, 5],
  y: [0b1111010, 7],
  s: [0b01000, 5],
};

/** The Huffman encoding of `text` (only the characters above), padded with 1 bits. */
export function huffmanEncode(text: string): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const c of text) {
    const [code, length] = HUFFMAN[c]!;
    acc = (acc << length) | code;
    bits += length;
    while (bits >= 8) {
      out.push((acc >> (bits - 8)) & 0xff);
      bits -= 8;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(out);
}

const AUTHORITY_NAMES = [Buffer.from(':authority'), Buffer.from('host')];
const AUTHORITY_HUFFMAN = [huffmanEncode(':authority'), huffmanEncode('host')];
/** Static table (RFC 7541, Appendix A) entries whose name is :authority (1) or host (38). */
const STATIC_AUTHORITY = new Set([1, 38]);
const STATIC_ENTRIES = 61;

class Undecidable extends Error {}

function integer(b: Buffer, pos: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let value = b[pos]! & max;
  pos++;
  if (value < max) return [value, pos];
  let shift = 0;
  for (;;) {
    if (pos >= b.length || shift > 21) throw new Undecidable();
    const byte = b[pos++]!;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return [value, pos];
  }
}

/** A string literal: its raw bytes, whether Huffman-coded, and where the next field starts. */
function literal(b: Buffer, pos: number): [Buffer, boolean, number] {
  if (pos >= b.length) throw new Undecidable();
  const huffman = (b[pos]! & 0x80) !== 0;
  const [length, start] = integer(b, pos, 7);
  if (start + length > b.length) throw new Undecidable();
  return [b.subarray(start, start + length), huffman, start + length];
}

/** The most octets a string literal can stand for (a Huffman code is at least 5 bits). */
const decodedMax = (raw: Buffer, huffman: boolean) => (huffman ? Math.floor((raw.length * 8) / 5) : raw.length);

/**
 * Whether the first header block of a connection names :authority or host; null when
 * that cannot be told for sure (malformed, or a dynamic table that may have evicted).
 * Returns also where the block's leading table size updates end: the one place a
 * field may be put in front of it.
 */
export function namesAuthority(block: Buffer): { found: boolean; insertAt: number } | null {
  try {
    // The dynamic table, newest first: whether each entry's name is :authority or host, and its size at most.
    const table: { authority: boolean; nameSize: number }[] = [];
    let capacity = TABLE_SIZE;
    let used = 0;
    let insertAt = 0;
    let pos = 0;
    let leading = true;
    const named = (index: number): boolean => {
      if (index >= 1 && index <= STATIC_ENTRIES) return STATIC_AUTHORITY.has(index);
      const entry = table[index - STATIC_ENTRIES - 1];
      if (entry === undefined) throw new Undecidable();
      return entry.authority;
    };
    while (pos < block.length) {
      const first = block[pos]!;
      if ((first & 0xe0) === 0x20) {
        // dynamic table size update
        if (!leading) throw new Undecidable();
        [capacity, pos] = integer(block, pos, 5);
        if (capacity < used) throw new Undecidable();
        insertAt = pos;
        continue;
      }
      leading = false;
      if ((first & 0x80) !== 0) {
        // indexed field
        const [index, next] = integer(block, pos, 7);
        if (named(index)) return { found: true, insertAt };
        pos = next;
        continue;
      }
      const incremental = (first & 0xc0) === 0x40;
      const [index, afterIndex] = integer(block, pos, incremental ? 6 : 4);
      pos = afterIndex;
      let authority: boolean;
      let nameSize: number;
      if (index === 0) {
        const [raw, huffman, next] = literal(block, pos);
        pos = next;
        authority = (huffman ? AUTHORITY_HUFFMAN : AUTHORITY_NAMES).some((n) => n.equals(raw));
        nameSize = decodedMax(raw, huffman);
      } else {
        authority = named(index);
        // No static name is longer than 27 octets; a dynamic entry keeps its own bound.
        nameSize = index <= STATIC_ENTRIES ? 32 : table[index - STATIC_ENTRIES - 1]!.nameSize;
      }
      const [value, huffman, next] = literal(block, pos);
      pos = next;
      if (authority) return { found: true, insertAt };
      if (incremental) {
        // An entry's size is its name and value octets plus 32; were the table ever
        // full, entries would be evicted and later indexes could not be told apart.
        used += nameSize + decodedMax(value, huffman) + 32;
        if (used > capacity) throw new Undecidable();
        table.unshift({ authority, nameSize });
      }
    }
    return { found: false, insertAt };
  } catch (err) {
    if (err instanceof Undecidable) return null;
    throw err;
  }
}

/** `:authority` (static index 1) as a literal without indexing: no HPACK state changes. */
function placeholderField(): Buffer {
  const value = Buffer.from(PLACEHOLDER_AUTHORITY);
  return Buffer.concat([Buffer.from([0x01, value.length]), value]);
}

export type FirstRequest =
  /** More bytes are needed to tell. */
  | { kind: 'more' }
  /** The bytes so far end between frames and hold no request yet. */
  | { kind: 'between' }
  /** Hand the connection on with these bytes; `stream` is set when a placeholder was added to that stream. */
  | { kind: 'done'; bytes: Buffer; stream: number | null };

/** Looks at a connection's bytes from `from` (after the client preface, at a frame boundary) for its first request. */
export function inspectFirstRequest(buf: Buffer, from: number): FirstRequest {
  const asIs: FirstRequest = { kind: 'done', bytes: buf, stream: null };
  let off = from;
  for (;;) {
    if (buf.length === off) return { kind: 'between' };
    if (buf.length < off + FRAME_HEADER) return { kind: 'more' };
    const length = buf.readUIntBE(off, 3);
    const type = buf[off + 3]!;
    const flags = buf[off + 4]!;
    const stream = buf.readUInt32BE(off + 5) & 0x7fffffff;
    if (length > MAX_FRAME) return asIs;
    if (buf.length < off + FRAME_HEADER + length) return { kind: 'more' };
    if (type !== HEADERS) {
      off += FRAME_HEADER + length;
      continue;
    }
    let payload = buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + length);
    let pad = 0;
    if ((flags & PADDED) !== 0) {
      if (payload.length < 1) return asIs;
      pad = payload[0]!;
      payload = payload.subarray(1);
    }
    const priority = (flags & PRIORITY) !== 0 ? payload.subarray(0, 5) : Buffer.alloc(0);
    if (priority.length + pad > payload.length) return asIs;
    const parts = [payload.subarray(priority.length, payload.length - pad)];
    let end = off + FRAME_HEADER + length;
    let last = flags;
    while ((last & END_HEADERS) === 0) {
      if (end - off > MAX_BLOCK) return asIs;
      if (buf.length < end + FRAME_HEADER) return { kind: 'more' };
      const n = buf.readUIntBE(end, 3);
      if (buf[end + 3] !== CONTINUATION || (buf.readUInt32BE(end + 5) & 0x7fffffff) !== stream || n > MAX_FRAME)
        return asIs;
      if (buf.length < end + FRAME_HEADER + n) return { kind: 'more' };
      parts.push(buf.subarray(end + FRAME_HEADER, end + FRAME_HEADER + n));
      last = buf[end + 4]!;
      end += FRAME_HEADER + n;
    }
    const block = Buffer.concat(parts);
    const names = namesAuthority(block);
    if (names === null || names.found) return asIs;
    const rewritten = Buffer.concat([
      block.subarray(0, names.insertAt),
      placeholderField(),
      block.subarray(names.insertAt),
    ]);
    // One HEADERS frame (padding dropped, priority kept), then CONTINUATIONs if it must be split.
    const frames: Buffer[] = [];
    const firstRoom = MAX_FRAME - priority.length;
    const endStream = flags & END_STREAM;
    frames.push(
      frame(
        HEADERS,
        endStream | (flags & PRIORITY) | (rewritten.length <= firstRoom ? END_HEADERS : 0),
        stream,
        Buffer.concat([priority, rewritten.subarray(0, firstRoom)]),
      ),
    );
    for (let at = firstRoom; at < rewritten.length; at += MAX_FRAME) {
      frames.push(
        frame(
          CONTINUATION,
          at + MAX_FRAME >= rewritten.length ? END_HEADERS : 0,
          stream,
          rewritten.subarray(at, at + MAX_FRAME),
        ),
      );
    }
    return { kind: 'done', bytes: Buffer.concat([buf.subarray(0, off), ...frames, buf.subarray(end)]), stream };
  }
}

const TAG = Symbol('echo-server.h2-placeholder');
type Tagged = { [TAG]?: number; stream?: Tagged };

/** The stream whose :authority was added on this connection (the session's socket, or the stream it wraps). */
export function placeholderStreamOf(socket: object | undefined): number | undefined {
  const s = socket as Tagged | undefined;
  return s?.[TAG] ?? s?.stream?.[TAG];
}

/**
 * Reads a connection's first bytes (the HTTP/2 preface is known to be there) and
 * returns the socket node:http2 should take. When the first request's header block
 * is complete in what arrived, it is put back (rewritten if need be) and the socket
 * itself is returned, so the connection runs natively. A client that waits for the
 * server's SETTINGS before its first request (HAProxy does) gets a bridge instead,
 * which watches the bytes until the first header block has passed, then forwards.
 */
export function firstRequestSocket<S extends Duplex>(socket: S): Promise<S | Duplex> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    // A client may wait for the server's SETTINGS before it sends anything at all.
    const silent = setTimeout(() => {
      if (buf.length === 0) {
        socket.off('data', onData);
        socket.off('close', onClose);
        finish(bridge(socket, buf));
      }
    }, SILENT_CLIENT_MS);
    const finish = (result: S | Duplex) => {
      if (settled) return;
      settled = true;
      clearTimeout(silent);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r =
        buf.length > MAX_BLOCK
          ? { kind: 'done' as const, bytes: buf, stream: null }
          : inspectFirstRequest(buf, PREFACE_LENGTH);
      if (r.kind === 'more') return;
      if (r.kind === 'done') {
        if (r.stream !== null) (socket as Tagged)[TAG] = r.stream;
        socket.pause();
        socket.unshift(r.bytes);
        finish(socket);
      } else {
        const pending = buf;
        socket.off('data', onData);
        socket.off('close', onClose);
        finish(bridge(socket, pending));
      }
    };
    const onClose = () => finish(socket);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.resume();
  });
}

/**
 * The connection as node:http2 should read it: the first header block is rewritten
 * as it passes (see inspectFirstRequest); `pending` are bytes already read, from the
 * start of the connection (the client preface first, if it has come).
 */
function bridge(socket: Duplex, pending: Buffer): Duplex {
  let held: Buffer = Buffer.alloc(0); // bytes from a frame boundary on, until the first header block has passed
  let from = PREFACE_LENGTH;
  return rewritingBridge(socket, pending, (chunk, pass, out) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    const r =
      held.length > MAX_BLOCK ? { kind: 'done' as const, bytes: held, stream: null } : inspectFirstRequest(held, from);
    if (r.kind === 'more') return false;
    if (r.kind === 'between') {
      pass(held);
      held = Buffer.alloc(0);
      from = 0;
      return false;
    }
    if (r.stream !== null) (out as Tagged)[TAG] = r.stream;
    pass(r.bytes);
    return true;
  });
}
