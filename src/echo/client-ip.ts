// Who the client really is, behind proxies. Forwarding headers are only believed
// when the direct peer is a trusted proxy; otherwise anyone could claim any address.
import { isIP } from 'node:net';
import type { NetworkSet } from '../util/addresses.ts';
import { normalizeIp } from '../util/addresses.ts';
import type { ClientIpHeader } from '../config/settings.ts';
import type { ConnectionFacts } from '../core/facts.ts';

export type { ClientIpHeader };

/**
 * The connection's original client: the PROXY header's source when it names one,
 * else the TCP peer. Only an IP source names a client; a UNIX socket path (AF_UNIX)
 * is shown in the PROXY section, never taken as the remote address.
 */
export function connectionClient(facts: ConnectionFacts): { address: string; port: number | undefined } {
  const { proxy } = facts;
  if (proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null && isIP(proxy.sourceAddress) !== 0) {
    return { address: proxy.sourceAddress, port: proxy.sourcePort ?? undefined };
  }
  return { address: facts.peerAddress, port: facts.peerPort };
}

export type ClientIpSource = 'peer' | 'forwarded' | 'x-forwarded-for' | 'x-real-ip';

export interface ClientInfo {
  /** The best guess at the originating client. */
  ip: string;
  /** Where `ip` came from. */
  source: ClientIpSource;
  /** The direct TCP peer. */
  peer: string;
  /** Whether the peer is in the trusted-proxy list. */
  peerTrusted: boolean;
  /** The one header believed from a trusted peer (--client-ip-header). */
  trustedHeader: ClientIpHeader;
  /** Raw forwarding headers as received, so every hop is visible. Absent ones are null. */
  forwarded: string | null;
  xForwardedFor: string | null;
  xRealIp: string | null;
}

export interface ForwardingHeaders {
  forwarded: string | null;
  xForwardedFor: string | null;
  xRealIp: string | null;
}

/**
 * Only the header the operator named is read: a trusted proxy maintains one of
 * them, and any other is whatever the client sent, passed along. So `Forwarded:
 * for=unknown` cannot hide the real X-Forwarded-For, and a client's own
 * X-Forwarded-For cannot beat the X-Real-IP a proxy set.
 */
export function resolveClient(
  peerAddress: string,
  h: ForwardingHeaders,
  trusted: NetworkSet,
  header: ClientIpHeader = 'x-forwarded-for',
): ClientInfo {
  const peer = normalizeIp(peerAddress);
  const peerTrusted = trusted.has(peer);
  const info: ClientInfo = {
    ip: peer,
    source: 'peer',
    peer,
    peerTrusted,
    trustedHeader: header,
    forwarded: h.forwarded,
    xForwardedFor: h.xForwardedFor,
    xRealIp: h.xRealIp, // no spread: a literal is cheaper
  };
  if (!peerTrusted) return info;
  if (header === 'forwarded') {
    return h.forwarded === null ? info : pick(info, forwardedFor(h.forwarded), 'forwarded', trusted);
  }
  if (header === 'x-forwarded-for') {
    return h.xForwardedFor === null
      ? info
      : pick(
          info,
          h.xForwardedFor.split(',').map((s) => s.trim()),
          'x-forwarded-for',
          trusted,
        );
  }
  if (h.xRealIp !== null) {
    const ip = hopAddress(h.xRealIp.trim());
    if (ip !== null) return { ...info, ip, source: 'x-real-ip' };
  }
  return info;
}

/**
 * Walk the chain from the nearest hop outwards, skipping trusted proxies. The first
 * untrusted address is the client. A hop that is not an address (`unknown`, an
 * obfuscated identifier) ends the walk: nothing beyond it can be verified.
 */
function pick(info: ClientInfo, chain: string[], source: ClientIpSource, trusted: NetworkSet): ClientInfo {
  let client: string | null = null;
  for (let i = chain.length - 1; i >= 0; i--) {
    const ip = hopAddress(chain[i]!);
    if (ip === null) break;
    client = ip;
    if (!trusted.has(ip)) break;
  }
  return client === null ? info : { ...info, ip: client, source };
}

/** The `for=` values of an RFC 7239 Forwarded header, in order. */
export function forwardedFor(header: string): string[] {
  const out: string[] = [];
  for (const element of splitOutsideQuotes(header, ',')) {
    for (const pair of splitOutsideQuotes(element, ';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      if (pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      out.push(unquote(pair.slice(eq + 1).trim()));
    }
  }
  return out;
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') quoted = !quoted;
    else if (c === '\\' && quoted) i++;
    else if (c === sep && !quoted) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s;
}

/** An address from a hop, without port or brackets; null when it is not an IP. */
export function hopAddress(hop: string): string | null {
  let s = hop;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return null;
    s = s.slice(1, end);
  } else if (s.indexOf(':') === s.lastIndexOf(':') && s.includes(':')) {
    s = s.slice(0, s.indexOf(':')); // IPv4 with a port
  }
  return isIP(s) === 0 ? null : normalizeIp(s);
}
