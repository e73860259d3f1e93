// The default rendering: the article's six lines, byte for byte in its layout,
// then one `Name: value` line for each thing the article does not show.
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
  return CONTROL.test(v) ? JSON.stringify(v).replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : v;
}

/** JSON with the characters JSON leaves raw that a terminal would obey (DEL, C1, U+2028/9) escaped too. */
const RAW_IN_JSON = /[\x7f-\x9f\u2028\u2029]/;
const RAW_IN_JSON_ALL = /[\x7f-\x9f\u2028\u2029]/g;
function json(v: unknown): string {
  const s = JSON.stringify(v);
  return RAW_IN_JSON.test(s) ? s.replace(RAW_IN_JSON_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : s;
}

export function renderText(e: Echo): string {
  let out =
    `RemoteAddr: ${oneLine(e.remoteAddr)}\n` +
    `Method: ${oneLine(e.method)}\n` +
    `RequestURI: ${oneLine(e.requestURI)}\n` +
    `Proto: ${oneLine(e.proto)}\n` +
    `ContentLength: ${e.contentLength}\n` +
    `Headers: ${json(e.headers)}\n` +
    `Path: ${json(e.path)}\n` +
    `Query: ${json(e.query)}\n`;
  const pseudo = json(e.pseudoHeaders);
  if (pseudo !== '{}') out += `PseudoHeaders: ${pseudo}\n`;
  const cookies = json(e.cookies);
  if (cookies !== '{}') out += `Cookies: ${cookies}\n`;
  if (e.body.bytes > 0 || e.contentLength !== 0) {
    const b = e.body;
    out += `BodyBytes: ${b.bytes}${b.truncated ? ' (echo truncated)' : ''}\n`;
    out += b.encoding === 'utf8' ? `Body: ${json(b.data)}\n` : `BodyBase64: ${b.data}\n`;
  }
  const c = e.client;
  out += `ClientIP: ${oneLine(c.ip)} (${c.source === 'peer' ? 'peer' : `${c.source} via trusted peer ${oneLine(c.peer)}`}; trusted header ${c.trustedHeader})\n`;
  if (c.forwarded !== null) out += `Forwarded: ${json(c.forwarded)}\n`;
  if (c.xForwardedFor !== null) out += `X-Forwarded-For: ${json(c.xForwardedFor)}\n`;
  if (c.xRealIp !== null) out += `X-Real-IP: ${json(c.xRealIp)}\n`;
  if (e.tls !== null) out += `TLS: ${json(e.tls)}\n`;
  if (e.proxy !== null) out += `ProxyProtocol: ${json(e.proxy)}\n`;
  out += `RequestID: ${oneLine(e.requestId)}\n`;
  if (e.server !== null) {
    out += `Hostname: ${oneLine(e.server.hostname)}\n`;
    out += `Addresses: ${oneLine(e.server.addresses.join(', '))}\n`;
    if (e.server.worker !== undefined) out += `Worker: ${e.server.worker}\n`; // --workers: which process answered
  }
  if (e.env !== null) out += `Env: ${json(e.env)}\n`;
  return out;
}
