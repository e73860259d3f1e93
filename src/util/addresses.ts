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
    if (family === 0)
      throw new ParseError(`"${cidr}" is not an IP address, CIDR or one of ${Object.keys(NAMED_NETWORKS).join(', ')}`);
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

/**
 * An IPv6 client by its /64 network: a host is usually given a whole /64, so
 * choosing a new source address in it must not make it a new client.
 */
export function network64(ip: string): string {
  const zone = ip.indexOf('%');
  const a = zone < 0 ? ip : ip.slice(0, zone);
  const gap = a.indexOf('::');
  const head = gap < 0 ? a.split(':') : gap === 0 ? [] : a.slice(0, gap).split(':');
  const tail = gap < 0 ? [] : a.slice(gap + 2) === '' ? [] : a.slice(gap + 2).split(':');
  // A trailing dotted quad is the last two groups.
  const tailGroups = tail.length + (tail.length > 0 && tail[tail.length - 1]!.includes('.') ? 1 : 0);
  const groups = [...head, ...Array<string>(Math.max(0, 8 - head.length - tailGroups)).fill('0'), ...tail].slice(0, 4);
  return `${groups.map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/**
 * The key a client address counts under in a per-client share (of the in-flight
 * budget, of --max-connections): IPv4 as it is, IPv6 by its /64.
 */
export function clientAddressKey(ip: string): string {
  return ip.includes(':') ? network64(ip) : ip;
}
