// Browsers send Origin with WebSocket handshakes and EventSource requests: a page of
// another site must not read the echo (cookies included) through them. No Origin
// (curl, ws, servers) or this server's own origin is always allowed. Its own origin
// is the host the request was sent to: `:authority` on HTTP/2 (Host when absent),
// Host on HTTP/1.1, and X-Forwarded-Host when a trusted proxy set it (behind nginx
// Host is often the upstream's name, `$proxy_host`, or lacks the public port).
import type { Config } from '../config/settings.ts';
import type { ConnectionFacts } from '../core/facts.ts';
import { normalizeIp } from '../util/addresses.ts';
import type { HeaderScan } from '../core/request-head.ts';
import { connectionClient } from '../echo/client-ip.ts';

/** `host[:port]` lower-cased, without the scheme's default port. */
function normalHost(host: string, scheme: string): string {
  const h = host.trim().toLowerCase();
  const port = scheme === 'https' || scheme === 'wss' ? ':443' : ':80';
  return h.endsWith(port) ? h.slice(0, -port.length) : h;
}

/**
 * Whether the request's Origin may read the echo. `viaTrustedProxy`: the peer is in
 * --trusted-proxies, so its X-Forwarded-Host (the first, the host the client used) counts.
 */
export function originAllowed(scan: HeaderScan, allowedOrigins: readonly string[], viaTrustedProxy = false): boolean {
  const origin = scan.origin;
  if (origin === undefined || allowedOrigins.includes('*')) return true;
  const o = origin.trim().toLowerCase();
  if (allowedOrigins.includes(o)) return true;
  const slash = o.indexOf('://');
  if (slash <= 0) return false;
  const scheme = o.slice(0, slash);
  const host = normalHost(o.slice(slash + 3), scheme);
  const own = scan.authority ?? scan.host;
  if (own !== undefined && normalHost(own, scheme) === host) return true;
  const forwarded = viaTrustedProxy ? scan.forwardedHost?.split(',')[0] : undefined;
  return forwarded !== undefined && normalHost(forwarded, scheme) === host;
}

/** originAllowed for an exchange: X-Forwarded-Host counts when its sender is a trusted proxy (as for the client IP). */
export function requestOriginAllowed(
  x: { scan: HeaderScan; facts: ConnectionFacts },
  config: Pick<Config, 'allowedOrigins' | 'trustedProxies'>,
): boolean {
  if (x.scan.origin === undefined) return true;
  return originAllowed(
    x.scan,
    config.allowedOrigins,
    config.trustedProxies.has(normalizeIp(connectionClient(x.facts).address)),
  );
}
