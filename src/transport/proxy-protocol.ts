// PROXY protocol v1 (text) and v2 (binary) headers, as sent by HAProxy, AWS NLB,
// Envoy and others ahead of the first byte of a connection. The parser is pure and
// bounded: it needs at most 107 bytes for v1 and 16 + 65535 for v2, and never
// throws anything but ProxyProtocolError.
import { isIP } from 'node:net';
import type { ProxyInfo, ProxyTlvs } from '../core/facts.ts';
import { V2_SIGNATURE } from '../util/proxy-header.ts';

// The writer lives beside the other address helpers; its importers find it here too.
export { V2_SIGNATURE, encodeProxyV2 } from '../util/proxy-header.ts';

export type { ProxyInfo, ProxyTlvs };

export class ProxyProtocolError extends Error {}

const V1_PREFIX = Buffer.from('PROXY ');
const V1_MAX = 107;

/**
 * Parses a header at the start of `buf`. Returns null when more bytes are needed,
 * otherwise the header and how many bytes it took.
 */
export function parseProxyHeader(buf: Buffer): { info: ProxyInfo; length: number } | null {
  if (buf.length === 0) return null;
  if (buf[0] === 0x0d) return parseV2(buf);
  if (buf[0] === 0x50) return parseV1(buf);
  throw new ProxyProtocolError('no PROXY protocol header (expected "PROXY " or the v2 signature)');
}

function expectPrefix(buf: Buffer, prefix: Buffer, what: string): boolean {
  const n = Math.min(buf.length, prefix.length);
  if (!buf.subarray(0, n).equals(prefix.subarray(0, n)))
    throw new ProxyProtocolError(`not a PROXY protocol ${what} header`);
  return buf.length >= prefix.length;
}

function parseV1(buf: Buffer): { info: ProxyInfo; length: number } | null {
  if (!expectPrefix(buf, V1_PREFIX, 'v1')) return null;
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyProtocolError('v1 header longer than 107 bytes');
    return null;
  }
  if (end + 2 > V1_MAX) throw new ProxyProtocolError('v1 header longer than 107 bytes');
  const parts = buf.toString('latin1', 0, end).split(' ');
  const transport = parts[1] ?? '';
  const base = { version: 1 as const, command: 'PROXY' as const, transport, tlvs: {} };
  if (transport === 'UNKNOWN') {
    return {
      info: { ...base, sourceAddress: null, sourcePort: null, destinationAddress: null, destinationPort: null },
      length: end + 2,
    };
  }
  if (transport !== 'TCP4' && transport !== 'TCP6')
    throw new ProxyProtocolError(`v1 transport "${transport.slice(0, 16)}" is not TCP4, TCP6 or UNKNOWN`);
  if (parts.length !== 6) throw new ProxyProtocolError('v1 header must have 6 fields');
  const family = transport === 'TCP4' ? 4 : 6;
  const [src = '', dst = '', sport = '', dport = ''] = parts.slice(2);
  if (isIP(src) !== family || isIP(dst) !== family) throw new ProxyProtocolError(`v1 addresses are not ${transport}`);
  return {
    info: {
      ...base,
      sourceAddress: src,
      sourcePort: port(sport),
      destinationAddress: dst,
      destinationPort: port(dport),
    },
    length: end + 2,
  };
}

function port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 65535)
    throw new ProxyProtocolError(`v1 port "${text.slice(0, 8)}" is invalid`);
  return Number(text);
}

const FAMILIES: Record<number, string> = {
  0x00: 'UNSPEC',
  0x11: 'TCP4',
  0x12: 'UDP4',
  0x21: 'TCP6',
  0x22: 'UDP6',
  0x31: 'UNIX',
  0x32: 'UNIX_DGRAM',
};

function parseV2(buf: Buffer): { info: ProxyInfo; length: number } | null {
  if (!expectPrefix(buf, V2_SIGNATURE, 'v2')) return null;
  if (buf.length < 16) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyProtocolError(`v2 version nibble is ${verCmd >> 4}, not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyProtocolError(`v2 command ${cmd} is neither LOCAL nor PROXY`);
  const fam = buf[13]!;
  const transport = FAMILIES[fam];
  if (transport === undefined) throw new ProxyProtocolError(`v2 address family 0x${fam.toString(16)} is unknown`);
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return null;
  const body = buf.subarray(16, 16 + len);
  const info: ProxyInfo = {
    version: 2,
    command: cmd === 0 ? 'LOCAL' : 'PROXY',
    transport,
    sourceAddress: null,
    sourcePort: null,
    destinationAddress: null,
    destinationPort: null,
    tlvs: {},
  };
  let offset = 0;
  if (fam === 0x11 || fam === 0x12) {
    offset = need(body, 12, 'IPv4 addresses');
    info.sourceAddress = [...body.subarray(0, 4)].join('.');
    info.destinationAddress = [...body.subarray(4, 8)].join('.');
    info.sourcePort = body.readUInt16BE(8);
    info.destinationPort = body.readUInt16BE(10);
  } else if (fam === 0x21 || fam === 0x22) {
    offset = need(body, 36, 'IPv6 addresses');
    info.sourceAddress = ipv6(body.subarray(0, 16));
    info.destinationAddress = ipv6(body.subarray(16, 32));
    info.sourcePort = body.readUInt16BE(32);
    info.destinationPort = body.readUInt16BE(34);
  } else if (fam === 0x31 || fam === 0x32) {
    offset = need(body, 216, 'UNIX addresses');
    info.sourceAddress = cString(body.subarray(0, 108));
    info.destinationAddress = cString(body.subarray(108, 216));
  }
  info.tlvs = parseTlvs(body.subarray(offset), false);
  return { info, length: 16 + len };
}

function need(body: Buffer, n: number, what: string): number {
  if (body.length < n) throw new ProxyProtocolError(`v2 header too short for ${what}`);
  return n;
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Let the platform compress it (`::`) the usual way.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

const SSL_SUB: Record<number, 'version' | 'cn' | 'cipher' | 'sigAlg' | 'keyAlg'> = {
  0x21: 'version',
  0x22: 'cn',
  0x23: 'cipher',
  0x24: 'sigAlg',
  0x25: 'keyAlg',
};

const PP2_CLIENT_SSL = 0x01;
const PP2_CLIENT_CERT_CONN = 0x02;
const PP2_CLIENT_CERT_SESS = 0x04;
const CLIENT_BITS: [number, string][] = [
  [PP2_CLIENT_SSL, 'SSL'],
  [PP2_CLIENT_CERT_CONN, 'CERT_CONN'],
  [PP2_CLIENT_CERT_SESS, 'CERT_SESS'],
];
const PRINTABLE = /^[\x20-\x7e]+$/;

function parseTlvs(b: Buffer, insideSsl: boolean): ProxyTlvs {
  const tlvs: ProxyTlvs = {};
  let i = 0;
  while (i < b.length) {
    if (i + 3 > b.length) throw new ProxyProtocolError('v2 TLV header truncated');
    const type = b[i]!;
    const len = b.readUInt16BE(i + 1);
    const start = i + 3;
    if (start + len > b.length) throw new ProxyProtocolError(`v2 TLV 0x${type.toString(16)} overruns the header`);
    const value = b.subarray(start, start + len);
    i = start + len;
    if (insideSsl && SSL_SUB[type] !== undefined) {
      (tlvs as Record<string, string>)[SSL_SUB[type]] = value.toString('utf8');
      continue;
    }
    switch (type) {
      case 0x01:
        tlvs.alpn = value.toString('latin1');
        break;
      case 0x02:
        tlvs.authority = value.toString('utf8');
        break;
      case 0x03:
        tlvs.crc32c = value.toString('hex');
        break;
      case 0x04:
        break; // NOOP: padding
      case 0x05:
        tlvs.uniqueId = PRINTABLE.test(value.toString('latin1')) ? value.toString('latin1') : value.toString('hex');
        break;
      case 0x30:
        tlvs.netns = value.toString('utf8');
        break;
      case 0x20: {
        if (insideSsl || len < 5) throw new ProxyProtocolError('v2 SSL TLV is malformed');
        const sub = parseTlvs(value.subarray(5), true) as Record<string, unknown>;
        delete sub.other;
        const client = value[0]!;
        const verify = value.readUInt32BE(1);
        // verify is 0 also when no certificate was asked for or sent (HAProxy sends 0
        // from a cleartext frontend too): verified needs a certificate bit as well.
        const verified = (client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)) !== 0 && verify === 0;
        tlvs.ssl = {
          client,
          clientBits: CLIENT_BITS.filter(([bit]) => (client & bit) !== 0).map(([, name]) => name),
          verify,
          verified,
          ...sub,
        };
        break;
      }
      default:
        (tlvs.other ??= []).push({ type, value: value.toString('hex') });
    }
  }
  return tlvs;
}
