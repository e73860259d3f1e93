import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, it } from 'node:test';
import { AMPLIFICATION, MAX_DATAGRAM, envelopeFor } from '../../src/adapters/l4/udp.ts';
import type { Identity } from '../../src/echo/identity.ts';

/** The envelope as the objects JSON.stringify writes: what envelopeFor's text must be, byte for byte. */
function reference(msg: Buffer, remoteAddr: string, identity: Identity | null): Buffer {
  const limit = Math.min(AMPLIFICATION * msg.length, MAX_DATAGRAM);
  const head = { protocol: 'udp', remoteAddr, identity, bytes: msg.length };
  const utf8 = isUtf8(msg);
  const full = Buffer.from(
    JSON.stringify({ ...head, encoding: utf8 ? 'utf8' : 'base64', payload: msg.toString(utf8 ? 'utf8' : 'base64') }),
  );
  if (full.length <= limit) return full;
  const bare = Buffer.from(JSON.stringify({ ...head, truncated: true }));
  if (bare.length <= limit) return bare;
  return msg;
}

const identities: (Identity | null)[] = [
  null,
  { hostname: 'echo-7f9c', addresses: ['10.0.0.7', 'fd00::7'] },
  { hostname: 'höst-\u2028"q"', addresses: [], worker: 2 },
];
const peers = ['127.0.0.1:40000', '[::1]:5353'];

/** Deterministic bytes, so a failure names its case. */
function bytes(n: number, seed: number, alphabet: number[] | null): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = alphabet === null ? x >>> 24 : alphabet[(x >>> 16) % alphabet.length]!;
  }
  return out;
}
const PRINTABLE = Array.from({ length: 95 }, (_, i) => 0x20 + i);
const WITH_CONTROLS = [...PRINTABLE, 0x00, 0x09, 0x0a, 0x0d, 0x1b, 0x7f, 0x22, 0x5c];

describe('UDP envelope', () => {
  it('is byte for byte the JSON of its objects, for every size around where the envelope stops fitting', () => {
    for (const identity of identities) {
      for (const peer of peers) {
        for (let n = 0; n <= 700; n++) {
          for (const [seed, alphabet] of [
            [1, PRINTABLE],
            [2, WITH_CONTROLS],
            [3, null],
          ] as const) {
            const msg = bytes(n, seed + n, alphabet);
            const got = envelopeFor(msg, peer, identity);
            assert.ok(got.equals(reference(msg, peer, identity)), `n=${n} seed=${seed} peer=${peer}`);
            assert.ok(got.length <= AMPLIFICATION * n, `n=${n}: never more than three times the datagram`);
          }
        }
      }
    }
  });

  it('is the same for multi-byte text, lone and paired surrogates in UTF-8, and invalid UTF-8', () => {
    const texts = [
      Buffer.from('é'.repeat(90)),
      Buffer.from('😀 ok '.repeat(30)),
      Buffer.from('line\u2028sep\u2029\u0085 ' + 'x'.repeat(80)),
      Buffer.from([0xed, 0xa0, 0x80, ...Buffer.from('x'.repeat(120))]), // an encoded lone surrogate: not UTF-8
      Buffer.from([0xff, 0xfe, ...Buffer.from('y'.repeat(120))]),
      Buffer.concat([Buffer.from('{"a":'), Buffer.alloc(150, 0), Buffer.from('}')]),
    ];
    for (const identity of identities)
      for (const msg of texts)
        assert.ok(envelopeFor(msg, peers[1]!, identity).equals(reference(msg, peers[1]!, identity)));
  });

  it('is the same for large datagrams, where one UDP datagram is the bound', () => {
    for (const n of [21_000, 21_830, 21_840, 30_000, 48_000, 49_200, 60_000, 65_507]) {
      for (const alphabet of [PRINTABLE, null]) {
        const msg = bytes(n, n, alphabet);
        const got = envelopeFor(msg, peers[0]!, identities[1]!);
        assert.ok(got.equals(reference(msg, peers[0]!, identities[1]!)), `n=${n}`);
        assert.ok(got.length <= MAX_DATAGRAM);
      }
    }
  });

  it('follows a change of identity object', () => {
    const msg = Buffer.from('z'.repeat(400));
    const a: Identity = { hostname: 'a', addresses: [] };
    const b: Identity = { hostname: 'b', addresses: ['192.0.2.1'] };
    for (const who of [a, b, a, null, b])
      assert.ok(envelopeFor(msg, peers[0]!, who).equals(reference(msg, peers[0]!, who)));
  });
});
