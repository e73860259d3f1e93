// The request model: what arrived, independent of the transport that carried it.
// Listeners fill a RequestInfo; renderers only ever see the Echo built from it.
import { isUtf8 } from 'node:buffer';
import { resolveClient, type ClientInfo, type ClientIpHeader } from './client-ip.ts';
import { formatHostPort, normalizeIp, type NetworkSet } from '../util/addresses.ts';
import { COOKIE, FORWARDED, X_FORWARDED_FOR, X_REAL_IP, headerKind } from '../core/header-names.ts';
import type { Identity } from './identity.ts';
import type { ProxyInfo, TlsInfo } from '../core/facts.ts';
import { traceOf, type TraceContext } from './trace.ts';

/** A body as read: the first bytes kept for the echo, and the real count. */
export interface BodyResult {
  bytes: number;
  kept: Buffer;
  truncated: boolean;
}

export const EMPTY_BODY: BodyResult = Object.freeze({ bytes: 0, kept: Buffer.alloc(0), truncated: false });

export interface RequestInfo {
  remoteAddress: string;
  remotePort: number | undefined;
  method: string;
  /** The request target exactly as sent. */
  uri: string;
  /** `HTTP/1.1`, `HTTP/2.0`, ... */
  proto: string;
  /** Flat [name, value, name, value, ...] in the order and letter case received. */
  rawHeaders: readonly string[];
  /** The declared Content-Length, or -1 when unknown (chunked); 0 without a body. */
  contentLength: number;
  body: BodyResult;
  requestId: string;
  /** TLS details when the connection is encrypted. */
  tls: TlsInfo | null;
  /** The PROXY protocol header, when the listener takes one. */
  proxy: ProxyInfo | null;
  /** The TCP peer: the proxy when a PROXY header named the original client. */
  peerAddress: string;
  peerPort: number | undefined;
}

export interface EchoBody {
  bytes: number;
  truncated: boolean;
  encoding: 'utf8' | 'base64';
  data: string;
}

/** The echo: stable, documented field names (see README, "JSON fields"). */
export interface Echo {
  remoteAddr: string;
  method: string;
  requestURI: string;
  proto: string;
  contentLength: number;
  headers: Record<string, string[]>;
  /** HTTP/2 pseudo-headers (`:method`, `:path`, ...); empty for HTTP/1.x. */
  pseudoHeaders: Record<string, string>;
  rawHeaders: [string, string][];
  path: string;
  query: Record<string, string[]>;
  cookies: Record<string, string>;
  body: EchoBody;
  client: ClientInfo;
  requestId: string;
  server: Identity | null;
  env: Record<string, string> | null;
  tls: TlsInfo | null;
  proxy: (ProxyInfo & { peer: string }) | null;
  /** The incoming trace context (traceparent, b3, x-b3-*), validated; null when absent or malformed. */
  trace: TraceContext | null;
}

export interface EchoContext {
  trustedProxies: NetworkSet;
  /** The one forwarding header the trusted hop maintains. */
  clientIpHeader: ClientIpHeader;
  identity: Identity | null;
  env: Record<string, string> | null;
}

/**
 * What every client-keyed map inherits from: nothing. Its own prototype is null and
 * it is frozen, so no name can be read through it or added to it.
 */
const NOTHING_INHERITED: object = Object.freeze(Object.create(null) as object);

/**
 * A map keyed by names a client chooses. Nothing is inherited (its prototype chain
 * ends in an empty, frozen object, not Object.prototype), so `__proto__`,
 * `constructor` and `toString` are ordinary keys: nothing inherited can be read back
 * as if the client had sent it, and assigning `__proto__` stores a value. Not
 * Object.create(null) itself: V8 keeps such an object in dictionary mode, which
 * makes every echo's JSON.stringify about twice as slow.
 */
export function clientKeyed<V>(): Record<string, V> {
  return Object.create(NOTHING_INHERITED) as Record<string, V>;
}

export function buildEcho(info: RequestInfo, ctx: EchoContext): Echo {
  const headers = clientKeyed<string[]>();
  let pseudoHeaders: Record<string, string> | null = null;
  const rawHeaders: [string, string][] = [];
  let forwarded: string | null = null;
  let xForwardedFor: string | null = null;
  let xRealIp: string | null = null;
  let cookie: string | null = null;
  const raw = info.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = headerText(raw[i + 1]!);
    rawHeaders.push([name, value]);
    if (name.charCodeAt(0) === 0x3a /* : */) {
      (pseudoHeaders ??= clientKeyed())[name] = value;
      continue;
    }
    (headers[name] ??= []).push(value);
    switch (headerKind(name)) {
      case COOKIE:
        cookie = joinValues(cookie, value, '; ');
        break;
      case FORWARDED:
        forwarded = joinValues(forwarded, value, ', ');
        break;
      case X_REAL_IP:
        xRealIp ??= value;
        break;
      case X_FORWARDED_FOR:
        xForwardedFor = joinValues(xForwardedFor, value, ', ');
        break;
    }
  }
  const { path, query } = splitTarget(info.uri);
  return {
    remoteAddr: formatHostPort(normalizeIp(info.remoteAddress), info.remotePort),
    method: info.method,
    requestURI: info.uri,
    proto: info.proto,
    contentLength: info.contentLength,
    headers,
    pseudoHeaders: pseudoHeaders ?? clientKeyed(),
    rawHeaders,
    path,
    query,
    cookies: cookie === null ? clientKeyed() : parseCookies(cookie),
    body: describeBody(info.body),
    client: echoClient(info, ctx, forwarded, xForwardedFor, xRealIp),
    requestId: info.requestId,
    server: ctx.identity,
    env: ctx.env,
    tls: info.tls,
    proxy: echoProxy(info),
    trace: traceOf(raw),
  };
}

const NON_ASCII = /[^\u0000-\u007f]/; // eslint-disable-line no-control-regex -- exactly the ASCII range

/** Who the client is, from the peer and the forwarding headers the trusted proxies maintain. */
export function echoClient(
  info: RequestInfo,
  ctx: EchoContext,
  forwarded: string | null,
  xForwardedFor: string | null,
  xRealIp: string | null,
): ClientInfo {
  return resolveClient(
    info.remoteAddress,
    { forwarded, xForwardedFor, xRealIp },
    ctx.trustedProxies,
    ctx.clientIpHeader,
  );
}

/** The PROXY header's facts with the proxy's own address as `peer`; null without one. */
export function echoProxy(info: RequestInfo): Echo['proxy'] {
  return info.proxy === null
    ? null
    : { ...info.proxy, peer: formatHostPort(normalizeIp(info.peerAddress), info.peerPort) };
}

/**
 * Header values arrive as bytes, which Node hands over one character per byte
 * (Latin-1). Path and query are UTF-8, so header values are read the same way when
 * their bytes are valid UTF-8; otherwise each byte above 0x7f is shown as `\xNN`,
 * so nothing is silently turned into other characters.
 */
export function headerText(value: string): string {
  if (!NON_ASCII.test(value)) return value; // the common case: ASCII, already right
  const bytes = Buffer.from(value, 'latin1');
  if (isUtf8(bytes)) return bytes.toString('utf8');
  return value.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Repeated header values joined as one, the way the header's own syntax lists them. */
export function joinValues(prev: string | null, value: string, sep: string): string {
  return prev === null ? value : prev + sep + value;
}

/** Path (percent-decoded where valid) and query of a request target, origin- or absolute-form. */
export function splitTarget(uri: string): { path: string; query: Record<string, string[]> } {
  let target = uri;
  if (!target.startsWith('/')) {
    try {
      const u = new URL(target);
      target = u.pathname + u.search;
    } catch {
      return { path: uri, query: clientKeyed() }; // asterisk-form (OPTIONS *) or authority-form (CONNECT)
    }
  }
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = clientKeyed<string[]>();
  if (q >= 0 && !splitPlainQuery(target, q + 1, query)) {
    for (const [k, v] of new URLSearchParams(target.slice(q + 1))) (query[k] ??= []).push(v);
  }
  let path = rawPath;
  if (rawPath.includes('%')) {
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      /* keep it as sent */
    }
  }
  return { path, query };
}

/**
 * The query from `from` on, split into `query` the way URLSearchParams splits it,
 * when it has nothing that URLSearchParams would decode or replace: no `%`, no `+`,
 * no surrogate. Then every name and value is the text between the separators, and
 * the common query costs no URLSearchParams object and no pair arrays. Returns false
 * (and adds nothing) otherwise.
 */
function splitPlainQuery(target: string, from: number, query: Record<string, string[]>): boolean {
  const end = target.length;
  for (let i = from; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x25 /* % */ || c === 0x2b /* + */ || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  // URLSearchParams drops one leading `?` of its input.
  let start = target.charCodeAt(from) === 0x3f /* ? */ ? from + 1 : from;
  // The next `=`, found once and kept while the sequences before it have none, so a
  // long query of names without values is still read in one pass.
  let eq = -2;
  while (start <= end) {
    let amp = target.indexOf('&', start);
    if (amp < 0) amp = end;
    if (amp > start) {
      // empty sequences are skipped
      if (eq !== -1 && eq < start) eq = target.indexOf('=', start);
      const hasValue = eq >= 0 && eq < amp;
      (query[hasValue ? target.slice(start, eq) : target.slice(start, amp)] ??= []).push(
        hasValue ? target.slice(eq + 1, amp) : '',
      );
    }
    start = amp + 1;
  }
  return true;
}

export function parseCookies(header: string): Record<string, string> {
  const out = clientKeyed<string>();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === '' || Object.hasOwn(out, name)) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out[name] = value;
  }
  return out;
}

/** UTF-8 text when the bytes are text, base64 otherwise. */
export function describeBody(body: BodyResult): EchoBody {
  const { kept } = body;
  if (kept.length === 0) return { bytes: body.bytes, truncated: body.truncated, encoding: 'utf8', data: '' };
  const end = body.truncated ? completeUtf8End(kept) : kept.length;
  const text = kept.subarray(0, end);
  if (isUtf8(text) && !text.includes(0)) {
    return { bytes: body.bytes, truncated: body.truncated, encoding: 'utf8', data: text.toString('utf8') };
  }
  return { bytes: body.bytes, truncated: body.truncated, encoding: 'base64', data: kept.toString('base64') };
}

/** Where a cut buffer ends without splitting a multi-byte UTF-8 sequence. */
function completeUtf8End(buf: Buffer): number {
  for (let back = 1; back <= 3 && back <= buf.length; back++) {
    const b = buf[buf.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    if (b < 0x80) return buf.length;
    const len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    return len > back ? buf.length - back : buf.length;
  }
  return buf.length;
}
