// IP address helpers: normalisation, formatting and trusted-network matching.
import { BlockList, isIP } from 'node:net';
import { ParseError } from './parse.ts';

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** The eight 16-bit groups of an IPv6 address (a dotted tail is the last two). */
function groups6(ip: string): number[] {
  const gap = ip.indexOf('::');
  const split = (s: string) => (s === '' ? [] : s.split(':'));
  const head = split(gap < 0 ? ip : ip.slice(0, gap));
  const tail = gap < 0 ? [] : split(ip.slice(gap + 2));
  const last = [...head, ...tail].at(-1) ?? '';
  const dotted = last.includes('.') ? last.split('.').map(Number) : null;
  const hex = (g: string[]) => g.filter((x) => !x.includes('.')).map((x) => parseInt(x, 16));
  const quad = dotted === null ? [] : [(dotted[0]! << 8) | dotted[1]!, (dotted[2]! << 8) | dotted[3]!];
  const [h, t] = [hex(head), [...hex(tail), ...(gap < 0 ? [] : quad)]];
  if (gap < 0) return [...h, ...quad];
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/**
 * An IPv4-mapped IPv6 address as plain IPv4: what a dual-stack socket reports, and
 * every other spelling of it (a URL writes `[::ffff:127.0.0.1]` as `[::ffff:7f00:1]`,
 * and a connection to either reaches 127.0.0.1 just the same).
 */
export function normalizeIp(ip: string): string {
  const m = MAPPED_V4.exec(ip);
  if (m) return m[1]!;
  if (!/ffff/i.test(ip) || isIP(ip) !== 6) return ip;
  const g = groups6(ip);
  if (g.length !== 8 || g.slice(0, 5).some((x) => x !== 0) || g[5] !== 0xffff) return ip;
  return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
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
