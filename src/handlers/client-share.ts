// Who a request counts against in the per-client share of the in-flight budget
// (--max-in-flight-per-client): the same client the echo names. Behind a trusted
// proxy that is the address its forwarding header gives; on a listener that takes
// the PROXY protocol, the header's source; otherwise the TCP peer. Without this
// share, one client holding delayed requests or streams takes every slot.
import type { Config } from '../config/settings.ts';
import { connectionClient, resolveClient } from '../echo/client-ip.ts';
import type { ConnectionFacts } from '../core/facts.ts';
import { FORWARDED, X_FORWARDED_FOR, X_REAL_IP, headerKind } from '../core/header-names.ts';
import { clientAddressKey as keyOf, normalizeIp } from '../util/addresses.ts';

/** The share one client may hold: `auto` is a tenth of the budget, at least 10, never above the budget. */
export function clientShare(config: Pick<Config, 'maxInFlight' | 'maxInFlightPerClient'>): number {
  const share =
    config.maxInFlightPerClient === 0 ? Math.max(10, Math.ceil(config.maxInFlight / 10)) : config.maxInFlightPerClient;
  return Math.min(share, config.maxInFlight);
}

const join = (a: string | null, b: string, sep: string) => (a === null ? b : `${a}${sep}${b}`);

/** The client a request counts against, by the trusted-proxy rules of the echo (echo/client-ip.ts). */
export function clientKey(
  rawHeaders: readonly string[],
  facts: ConnectionFacts,
  config: Pick<Config, 'trustedProxies' | 'clientIpHeader'>,
): string {
  const remote = normalizeIp(connectionClient(facts).address);
  if (config.trustedProxies.empty || !config.trustedProxies.has(remote)) return keyOf(remote);
  let forwarded: string | null = null;
  let xForwardedFor: string | null = null;
  let xRealIp: string | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    switch (headerKind(rawHeaders[i]!)) {
      case FORWARDED:
        forwarded = join(forwarded, rawHeaders[i + 1]!, ', ');
        break;
      case X_FORWARDED_FOR:
        xForwardedFor = join(xForwardedFor, rawHeaders[i + 1]!, ', ');
        break;
      case X_REAL_IP:
        xRealIp ??= rawHeaders[i + 1]!;
        break;
    }
  }
  return keyOf(
    resolveClient(remote, { forwarded, xForwardedFor, xRealIp }, config.trustedProxies, config.clientIpHeader).ip,
  );
}
