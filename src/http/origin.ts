// Browsers send Origin with WebSocket handshakes and EventSource requests: a page of
// another site must not read the echo (cookies included) through them. No Origin
// (curl, ws, servers) or this server's own origin is always allowed.
import type { HeaderScan } from './request-head.ts';

export function originAllowed(scan: HeaderScan, allowedOrigins: readonly string[]): boolean {
  const origin = scan.origin;
  if (origin === undefined || allowedOrigins.includes('*')) return true;
  const o = origin.trim().toLowerCase();
  if (allowedOrigins.includes(o)) return true;
  const slash = o.indexOf('://');
  return slash > 0 && scan.host !== undefined && o.slice(slash + 3) === scan.host.trim().toLowerCase();
}
