// The per-client share of --max-connections (--max-connections-per-client): how
// many open connections one client may hold, on every port and protocol together
// (HTTP/1.1, HTTP/2, TLS, the TCP echo), so one client cannot take every slot.
// The client is what is known when the connection is accepted: the TCP peer, or on
// a port that takes the PROXY protocol the header's source; an IPv6 client counts
// by its /64. A peer in --trusted-proxies is a front carrying many clients whose
// addresses only its requests name, so its connections are not held to the share
// (the in-flight share sorts its requests by client instead).
import type { Config } from '../config/settings.ts';
import { clientAddressKey, normalizeIp } from '../util/addresses.ts';

/** The share in effect: `auto` is a tenth of --max-connections, at least 10; 0 when it is no smaller than the limit (no share kept). */
export function connectionShare(config: Pick<Config, 'maxConnections' | 'maxConnectionsPerClient'>): number {
  const share =
    config.maxConnectionsPerClient === 0
      ? Math.max(10, Math.ceil(config.maxConnections / 10))
      : config.maxConnectionsPerClient;
  return share < config.maxConnections ? share : 0;
}

/** A connection's hold on its client's share; `release` gives it back (only the first call counts). */
export interface ConnectionSlot {
  readonly client: string;
  readonly release: () => void;
}

/** Why a connection was not admitted: its client already holds `share` connections. */
export interface ShareRefusal {
  readonly client: string;
  readonly share: number;
}

export class ConnectionShares {
  readonly share: number;
  readonly #trusted: Config['trustedProxies'];
  /**
   * Open connections by client. An entry exists only while its client has one
   * open (removed at zero), so the map never outgrows --max-connections.
   */
  readonly #byClient = new Map<string, number>();

  constructor(config: Pick<Config, 'maxConnections' | 'maxConnectionsPerClient' | 'trustedProxies'>) {
    this.share = connectionShare(config);
    this.#trusted = config.trustedProxies;
  }

  /**
   * Takes a slot for a connection from `address` (the peer, or the PROXY header's
   * source): a slot, null when no share applies, or the refusal. `peerIsClient`:
   * false when `address` came from a PROXY header, which a trusted proxy sends for
   * its clients, so the trusted-proxy exemption is not asked.
   */
  admit(address: string, peerIsClient = true): ConnectionSlot | ShareRefusal | null {
    if (this.share === 0) return null;
    const ip = normalizeIp(address);
    if (peerIsClient && !this.#trusted.empty && this.#trusted.has(ip)) return null;
    const client = clientAddressKey(ip);
    const held = this.#byClient.get(client) ?? 0;
    if (held >= this.share) return { client, share: this.share };
    this.#byClient.set(client, held + 1);
    let released = false;
    return {
      client,
      release: () => {
        if (released) return;
        released = true;
        const n = this.#byClient.get(client)! - 1;
        if (n === 0) this.#byClient.delete(client);
        else this.#byClient.set(client, n);
      },
    };
  }
}

export const isRefusal = (r: ConnectionSlot | ShareRefusal | null): r is ShareRefusal =>
  r !== null && !('release' in r);
