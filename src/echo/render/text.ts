// The default rendering: the article's six lines, byte for byte in its layout,
// then one `Name: value` line for each thing the article does not show.
import { safeJson, safeJsonString } from '../../util/escape.ts';
import type { Identity } from '../identity.ts';
import type { Echo } from '../model.ts';

export const TEXT_TYPE = 'text/plain; charset=utf-8';

/** Line breaks and other controls, including C1 and the Unicode line separators (a scan: cheaper than a regular expression for short values). */
function hasControl(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/**
 * A value as it goes on its line: unchanged when it is plain, else JSON-quoted, so
 * no value (a PROXY header's address, a hostname) can end its line and forge the next.
 */
function oneLine(v: string): string {
  return hasControl(v) ? safeJson(v) : v;
}

/** Whether a client-keyed map has any entry (cheaper than serialising an empty one). */
function hasEntries(map: object): boolean {
  for (const _ in map) return true;
  return false;
}

/** The identity lines: the same for every request, so written once per identity. */
let identityOf: Identity | null = null;
let identityLines = '';
function identityText(server: Identity): string {
  if (server !== identityOf) {
    identityOf = server;
    identityLines =
      `Hostname: ${oneLine(server.hostname)}\nAddresses: ${oneLine(server.addresses.join(', '))}\n` +
      (server.worker !== undefined ? `Worker: ${server.worker}\n` : ''); // --workers: which process answered
  }
  return identityLines;
}

export function renderText(e: Echo): string {
  let out =
    `RemoteAddr: ${oneLine(e.remoteAddr)}\n` +
    `Method: ${oneLine(e.method)}\n` +
    `RequestURI: ${oneLine(e.requestURI)}\n` +
    `Proto: ${oneLine(e.proto)}\n` +
    `ContentLength: ${e.contentLength}\n` +
    `Headers: ${safeJson(e.headers)}\n` +
    `Path: ${safeJsonString(e.path)}\n` +
    `Query: ${safeJson(e.query)}\n`;
  if (hasEntries(e.pseudoHeaders)) out += `PseudoHeaders: ${safeJson(e.pseudoHeaders)}\n`;
  if (hasEntries(e.cookies)) out += `Cookies: ${safeJson(e.cookies)}\n`;
  if (e.body.bytes > 0 || e.contentLength !== 0) {
    const b = e.body;
    out += `BodyBytes: ${b.bytes}${b.truncated ? ' (echo truncated)' : ''}\n`;
    out += b.encoding === 'utf8' ? `Body: ${safeJson(b.data)}\n` : `BodyBase64: ${b.data}\n`;
  }
  const c = e.client;
  out += `ClientIP: ${oneLine(c.ip)} (${c.source === 'peer' ? 'peer' : `${c.source} via trusted peer ${oneLine(c.peer)}`}; trusted header ${c.trustedHeader})\n`;
  if (c.forwarded !== null) out += `Forwarded: ${safeJson(c.forwarded)}\n`;
  if (c.xForwardedFor !== null) out += `X-Forwarded-For: ${safeJson(c.xForwardedFor)}\n`;
  if (c.xRealIp !== null) out += `X-Real-IP: ${safeJson(c.xRealIp)}\n`;
  if (e.tls !== null) out += `TLS: ${safeJson(e.tls)}\n`;
  if (e.proxy !== null) out += `ProxyProtocol: ${safeJson(e.proxy)}\n`;
  out += `RequestID: ${oneLine(e.requestId)}\n`;
  if (e.server !== null) out += identityText(e.server);
  if (e.env !== null) out += `Env: ${safeJson(e.env)}\n`;
  return out;
}
