// The allowlist of GET /forward: what the server may call on a client's behalf.
// Entries are CIDRs or addresses, or host names, each optionally with a port. The
// check is made on every address a name resolves to (the caller then connects to
// the address checked, so a second answer from the resolver cannot change it).
// Some addresses are never reached through a broad entry: the cloud metadata
// services (and all of link-local) only through an entry naming that exact address,
// loopback and unspecified only through an address entry inside their own block,
// the server's own ports only through an entry naming that port. A host-name entry
// never grants any of them: a name is the resolver's to point anywhere.
import { BlockList, isIP } from 'node:net';
import { normalizeIp } from './addresses.ts';
import { ParseError } from './parse.ts';

export interface NetEntry {
  kind: 'net';
  text: string;
  addr: string;
  prefix: number;
  family: 4 | 6;
  port: number | null;
}
export interface NameEntry {
  kind: 'name';
  text: string;
  name: string;
  port: number | null;
}
export type AllowEntry = NetEntry | NameEntry;

const NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/;

function parsePort(text: string, entry: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535)
    throw new ParseError(`"${entry}" has an invalid port`);
  return Number(text);
}

function netEntry(spec: string, port: number | null, entry: string): NetEntry | null {
  const [addr = '', prefixText] = spec.split('/');
  const family = isIP(addr);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  if (prefixText !== undefined && (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > max))
    throw new ParseError(`"${entry}" has an invalid prefix length`);
  const prefix = prefixText === undefined ? max : Number(prefixText);
  // An IPv4-mapped entry (::ffff:10.0.0.0/104) is the IPv4 block it maps: addresses are
  // checked as IPv4 (normalizeIp), so it must be too.
  const v4 = family === 6 && prefix >= 96 ? normalizeIp(addr) : addr;
  if (v4 !== addr) return { kind: 'net', text: entry, addr: v4, prefix: prefix - 96, family: 4, port };
  return {
    kind: 'net',
    text: entry,
    addr,
    prefix,
    family: family === 4 ? 4 : 6,
    port,
  };
}

/** One entry: `10.0.0.0/8`, `10.0.0.0/8:8080`, `fd00::/8`, `[fd00::1]:80`, `[fd00::/64]:80`, `echo-b`, `echo-b:8080`. */
export function parseAllowEntry(entry: string): AllowEntry {
  const text = entry.trim().toLowerCase();
  const bracket = /^\[([^\]]+)\](?::([^:]*))?$/.exec(text);
  if (bracket) {
    const port = bracket[2] === undefined ? null : parsePort(bracket[2], entry);
    const e = isIP(bracket[1]!.split('/')[0] ?? '') === 6 ? netEntry(bracket[1]!, port, entry) : null;
    if (e === null) throw new ParseError(`"${entry}": only an IPv6 address goes in brackets`);
    return e;
  }
  if (isIP(text.split('/')[0] ?? '') === 6) return netEntry(text, null, entry)!;
  const colon = text.lastIndexOf(':');
  const host = colon < 0 ? text : text.slice(0, colon);
  const port = colon < 0 ? null : parsePort(text.slice(colon + 1), entry);
  const e = netEntry(host, port, entry);
  if (e !== null) return e;
  if (host.includes('/') || !NAME.test(host))
    throw new ParseError(`"${entry}" is not a CIDR, an address or a host name (with an optional :port)`);
  return { kind: 'name', text: entry, name: host.replace(/\.$/, ''), port };
}

export function parseAllowList(list: readonly string[]): AllowEntry[] {
  return list.map(parseAllowEntry);
}

const block = (cidrs: string[]) => {
  const b = new BlockList();
  for (const c of cidrs) {
    const [a = '', p = ''] = c.split('/');
    b.addSubnet(a, Number(p), isIP(a) === 4 ? 'ipv4' : 'ipv6');
  }
  return b;
};
// Cloud metadata services (AWS, its IPv6 twin, Alibaba) and the link-local blocks they live in.
const METADATA = block(['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32']);
const LOOPBACK = [
  { net: block(['127.0.0.0/8']), prefix: 8, family: 4 },
  { net: block(['::1/128']), prefix: 128, family: 6 },
];
const UNSPECIFIED = [
  { net: block(['0.0.0.0/8']), prefix: 8, family: 4 },
  { net: block(['::/128']), prefix: 128, family: 6 },
];

const type = (family: number) => (family === 4 ? 'ipv4' : 'ipv6');

function contains(e: NetEntry, ip: string, family: number): boolean {
  if (e.family !== family) return false;
  const b = new BlockList();
  b.addSubnet(e.addr, e.prefix, type(family));
  return b.check(ip, type(family));
}

/** Why `ip` is guarded, and whether entry `e` (which contains it) is narrow enough to reach it. */
function guard(ip: string, family: number): ((e: NetEntry) => boolean) | null {
  if (METADATA.check(ip, type(family))) return (e) => e.prefix === (family === 4 ? 32 : 128);
  for (const g of [...LOOPBACK, ...UNSPECIFIED]) {
    if (g.family === family && g.net.check(ip, type(family)))
      return (e) => e.prefix >= g.prefix && g.net.check(e.addr, type(family));
  }
  return null;
}

export interface AllowQuestion {
  /** The URL's host as written (a name or an address literal). */
  host: string;
  port: number;
  /** Every address it resolves to. */
  addresses: readonly string[];
  /** The server's own listening ports. */
  ownPorts: ReadonlySet<number>;
}

/** Null when every address may be called, else the first refusal's reason. */
export function allowProblem(list: readonly AllowEntry[], q: AllowQuestion): string | null {
  const name = q.host.toLowerCase().replace(/\.$/, '');
  const own = q.ownPorts.has(q.port);
  const portOk = (e: AllowEntry) => (own ? e.port === q.port : e.port === null || e.port === q.port);
  for (const raw of q.addresses) {
    const ip = normalizeIp(raw);
    const family = isIP(ip);
    const narrow = guard(ip, family);
    const granted = list.some((e) => {
      if (!portOk(e)) return false;
      if (e.kind === 'name') return narrow === null && e.name === name;
      return contains(e, ip, family) && (narrow === null || narrow(e));
    });
    if (!granted) {
      const what = own
        ? " (this server's own port needs an entry naming it)"
        : narrow !== null
          ? ' (loopback, unspecified, link-local and metadata addresses need an address entry of their own)'
          : '';
      return `${q.host === ip ? ip : `${q.host} (${ip})`} port ${q.port} is not in --forward-allow${what}`;
    }
  }
  return null;
}
