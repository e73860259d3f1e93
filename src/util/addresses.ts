// IP address helpers: normalisation, formatting and trusted-network matching.
import { BlockList, isIP } from 'node:net';
import { ParseError } from './parse.ts';

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** An IPv4-mapped IPv6 address (what a dual-stack socket reports) as plain IPv4. */
export function normalizeIp(ip: string): string {
  if (!ip.startsWith('::ffff:') && !ip.startsWith('::FFFF:')) return ip;
  const m = MAPPED_V4.exec(ip);
  return m ? m[1]! : ip;
}

/** `ip:port`, with IPv6 in brackets. */
export function formatHostPort(ip: string, port: number | undefined): string {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return port === undefined ? host : `${host}:${port}`;
}

/**
 * Named groups an operator may use instead of spelling out CIDRs. Each is as narrow as
 * its name: `loopback` is the two addresses a local proxy really connects from (not all
 * of 127.0.0.0/8, where any local process can bind an address of its choosing);
 * `private` is RFC 1918 and IPv6 unique-local only. Carrier-grade NAT space (RFC 6598)
 * is shared with other customers of the same carrier, so it is not private: it has a
 * name of its own, for the networks (some cloud VPCs and overlays) that use it inside.
 */
const NAMED_NETWORKS: Record<string, string[]> = {
  loopback: ['127.0.0.1/32', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
  cgnat: ['100.64.0.0/10'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
};

/** A set of networks, built once from CIDRs, single addresses or the names above. */
export class NetworkSet {
  readonly #list = new BlockList();
  readonly entries: readonly string[];

  constructor(specs: readonly string[]) {
    const entries: string[] = [];
    for (const spec of specs) {
      const expanded = Object.hasOwn(NAMED_NETWORKS, spec.toLowerCase()) ? NAMED_NETWORKS[spec.toLowerCase()]! : [spec];
      for (const cidr of expanded) {
        this.#add(cidr);
        entries.push(cidr);
      }
    }
    this.entries = entries;
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  #add(cidr: string): void {
    const [addr = '', prefixText] = cidr.split('/');
    const family = isIP(addr);
    if (family === 0) throw new ParseError(`"${cidr}" is not an IP address, CIDR or one of ${Object.keys(NAMED_NETWORKS).join(', ')}`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const maxPrefix = family === 4 ? 32 : 128;
    let prefix = maxPrefix;
    if (prefixText !== undefined) {
      if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
        throw new ParseError(`"${cidr}" has an invalid prefix length`);
      }
      prefix = Number(prefixText);
    }
    this.#list.addSubnet(addr, prefix, type);
  }

  has(ip: string): boolean {
    if (this.entries.length === 0) return false;
    const plain = normalizeIp(ip);
    const family = isIP(plain);
    if (family === 0) return false;
    return this.#list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }
}
