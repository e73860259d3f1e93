// The default rendering: the article's six lines, byte for byte in its layout,
// then one `Name: value` line for each thing the article does not show.
import type { Echo } from '../model.ts';

export const TEXT_TYPE = 'text/plain; charset=utf-8';

export function renderText(e: Echo): string {
  let out =
    `RemoteAddr: ${e.remoteAddr}\n` +
    `Method: ${e.method}\n` +
    `RequestURI: ${e.requestURI}\n` +
    `Proto: ${e.proto}\n` +
    `ContentLength: ${e.contentLength}\n` +
    `Headers: ${JSON.stringify(e.headers)}\n` +
    `Path: ${JSON.stringify(e.path)}\n` +
    `Query: ${JSON.stringify(e.query)}\n`;
  const pseudo = JSON.stringify(e.pseudoHeaders);
  if (pseudo !== '{}') out += `PseudoHeaders: ${pseudo}\n`;
  const cookies = JSON.stringify(e.cookies);
  if (cookies !== '{}') out += `Cookies: ${cookies}\n`;
  if (e.body.bytes > 0 || e.contentLength !== 0) {
    const b = e.body;
    out += `BodyBytes: ${b.bytes}${b.truncated ? ' (echo truncated)' : ''}\n`;
    out += b.encoding === 'utf8' ? `Body: ${JSON.stringify(b.data)}\n` : `BodyBase64: ${b.data}\n`;
  }
  const c = e.client;
  out += `ClientIP: ${c.ip} (${c.source === 'peer' ? 'peer' : `${c.source} via trusted peer ${c.peer}`})\n`;
  if (c.forwarded !== null) out += `Forwarded: ${JSON.stringify(c.forwarded)}\n`;
  if (c.xForwardedFor !== null) out += `X-Forwarded-For: ${JSON.stringify(c.xForwardedFor)}\n`;
  if (c.xRealIp !== null) out += `X-Real-IP: ${JSON.stringify(c.xRealIp)}\n`;
  if (e.tls !== null) out += `TLS: ${JSON.stringify(e.tls)}\n`;
  if (e.proxy !== null) out += `ProxyProtocol: ${JSON.stringify(e.proxy)}\n`;
  out += `RequestID: ${e.requestId}\n`;
  if (e.server !== null) {
    out += `Hostname: ${e.server.hostname}\n`;
    out += `Addresses: ${e.server.addresses.join(', ')}\n`;
    if (e.server.worker !== undefined) out += `Worker: ${e.server.worker}\n`; // --workers: which process answered
  }
  if (e.env !== null) out += `Env: ${JSON.stringify(e.env)}\n`;
  return out;
}
