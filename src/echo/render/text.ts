// The default rendering: the article's six lines, byte for byte in its layout,
// then one `Name: value` line for each thing the article does not show.
import { safeJson } from '../../util/escape.ts';
import type { Echo } from '../model.ts';

export const TEXT_TYPE = 'text/plain; charset=utf-8';

/** Line breaks and other controls, including C1 and the Unicode line separators. */
// eslint-disable-next-line no-control-regex -- control characters are what this finds
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/**
 * A value as it goes on its line: unchanged when it is plain, else JSON-quoted, so
 * no value (a PROXY header's address, a hostname) can end its line and forge the next.
 */
function oneLine(v: string): string {
  return CONTROL.test(v) ? safeJson(v) : v;
}

export function renderText(e: Echo): string {
  let out =
    `RemoteAddr: ${oneLine(e.remoteAddr)}\n` +
    `Method: ${oneLine(e.method)}\n` +
    `RequestURI: ${oneLine(e.requestURI)}\n` +
    `Proto: ${oneLine(e.proto)}\n` +
    `ContentLength: ${e.contentLength}\n` +
    `Headers: ${safeJson(e.headers)}\n` +
    `Path: ${safeJson(e.path)}\n` +
    `Query: ${safeJson(e.query)}\n`;
  const pseudo = safeJson(e.pseudoHeaders);
  if (pseudo !== '{}') out += `PseudoHeaders: ${pseudo}\n`;
  const cookies = safeJson(e.cookies);
  if (cookies !== '{}') out += `Cookies: ${cookies}\n`;
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
  if (e.server !== null) {
    out += `Hostname: ${oneLine(e.server.hostname)}\n`;
    out += `Addresses: ${oneLine(e.server.addresses.join(', '))}\n`;
    if (e.server.worker !== undefined) out += `Worker: ${e.server.worker}\n`; // --workers: which process answered
  }
  if (e.env !== null) out += `Env: ${safeJson(e.env)}\n`;
  return out;
}
