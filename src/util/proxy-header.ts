// The PROXY protocol header as a sender writes it: the server's own client (echo-server
// call), the health check and the tests drive listeners that take the header, and the
// parser (transport/proxy-protocol.ts) reads the same signature.
import { isIP } from 'node:net';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Writes a v2 header (for tests and for anyone wanting to drive echo-server through one). */
export function encodeProxyV2(opts: {
  command?: 'PROXY' | 'LOCAL';
  source?: [string, number];
  destination?: [string, number];
  tlvs?: [number, Buffer][];
}): Buffer {
  const parts: Buffer[] = [];
  let fam = 0x00;
  if (opts.source && opts.destination) {
    const v6 = isIP(opts.source[0]) === 6;
    fam = v6 ? 0x21 : 0x11;
    const addr = (ip: string) => (v6 ? v6Bytes(ip) : Buffer.from(ip.split('.').map(Number)));
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(opts.source[1], 0);
    ports.writeUInt16BE(opts.destination[1], 2);
    parts.push(addr(opts.source[0]), addr(opts.destination[0]), ports);
  }
  for (const [type, value] of opts.tlvs ?? []) {
    const h = Buffer.alloc(3);
    h[0] = type;
    h.writeUInt16BE(value.length, 1);
    parts.push(h, value);
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | (opts.command === 'LOCAL' ? 0 : 1);
  head[1] = fam;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, body]);
}

function v6Bytes(ip: string): Buffer {
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
