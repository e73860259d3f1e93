// Response compression (the compress control): the echo compressed with node:zlib
// in the coding asked for, or in the one the client's Accept-Encoding prefers
// (`auto`). The echo is bounded already (--max-echo-body, the rendering of it), so
// it is compressed whole, at speed-oriented levels, and sent with its computed
// Content-Length: bytes out are the bytes on the wire.
import { brotliCompressSync, constants, deflateSync, gzipSync, zstdCompressSync } from 'node:zlib';

import type { Coding, CompressAsk } from '../controls/table.ts';

/** The order `auto` prefers among codings of equal q: the smallest output first, gzip the safe default. */
const PREFERENCE: readonly Coding[] = ['zstd', 'br', 'gzip', 'deflate'];

/** The most Accept-Encoding entries read: a longer list is cut there, not parsed. */
const MAX_ENTRIES = 32;

/** The Accept-Encoding values of a request, joined as one list; undefined when absent. */
export function acceptEncodingOf(rawHeaders: readonly string[]): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 15 && rawHeaders[i]!.toLowerCase() === 'accept-encoding') {
      out = out === undefined ? rawHeaders[i + 1]! : `${out}, ${rawHeaders[i + 1]!}`;
    }
  }
  return out;
}

/** Each coding's q-value (1000ths), `*` and `identity` included; a malformed q counts as 0. */
function qValues(header: string): Map<string, number> {
  const q = new Map<string, number>();
  for (const entry of header.split(',').slice(0, MAX_ENTRIES)) {
    const [name, ...params] = entry.split(';');
    const coding = name!.trim().toLowerCase();
    if (coding === '') continue;
    let value = 1000;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p);
      if (m !== null) value = Math.min(1000, Math.round(Number(m[1]) * 1000));
      else if (/^\s*q\s*=/i.test(p)) value = 0;
    }
    q.set(coding, value);
  }
  return q;
}

/** The q-value the client gives `coding` (RFC 9110 12.5.3): its own entry, else `*`'s, else 0. */
function qOf(q: Map<string, number>, coding: string): number {
  return q.get(coding) ?? q.get('*') ?? 0;
}

/**
 * The coding to send: for a named coding, it when the client accepts it (no
 * Accept-Encoding at all accepts any coding, RFC 9110), else 'refuse' (406); for
 * auto, the client's highest-q coding (PREFERENCE breaks ties), or null: plain,
 * since identity is always acceptable to a client that accepts nothing else.
 */
export function negotiateCoding(ask: CompressAsk, header: string | undefined): Coding | null | 'refuse' {
  if (ask !== 'auto') {
    if (header === undefined) return ask;
    return qOf(qValues(header), ask) > 0 ? ask : 'refuse';
  }
  if (header === undefined) return null;
  const q = qValues(header);
  let best: Coding | null = null;
  let bestQ = 0;
  for (const c of PREFERENCE) {
    const v = qOf(q, c);
    if (v > bestQ) {
      best = c;
      bestQ = v;
    }
  }
  // A client that prefers identity over every coding gets it.
  const identity = q.get('identity') ?? (q.has('*') ? q.get('*')! : 1);
  return best !== null && bestQ >= identity ? best : best !== null && identity === 0 ? best : null;
}

/** The body in `coding`, at a level chosen for speed over size. */
export function compressBody(coding: Coding, body: string | Buffer): Buffer {
  switch (coding) {
    case 'gzip':
      return gzipSync(body, { level: 1 });
    case 'deflate':
      return deflateSync(body, { level: 1 });
    case 'br':
      return brotliCompressSync(body, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_SIZE_HINT]: Buffer.byteLength(body) },
      });
    case 'zstd':
      return zstdCompressSync(body, { params: { [constants.ZSTD_c_compressionLevel]: 1 } });
  }
}
