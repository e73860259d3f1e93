import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ProxyProtocolError,
  V2_SIGNATURE,
  encodeProxyV2,
  parseProxyHeader,
} from '../../src/transport/proxy-protocol.ts';

const ok = (text: string | Buffer) => {
  const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const r = parseProxyHeader(buf);
  assert.ok(r !== null, 'complete header');
  return r;
};

describe('PROXY protocol v1', () => {
  it('parses TCP4 and TCP6 and reports the header length', () => {
    const r = ok('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n');
    assert.deepEqual(r.info, {
      version: 1,
      command: 'PROXY',
      transport: 'TCP4',
      tlvs: {},
      sourceAddress: '192.0.2.1',
      sourcePort: 56324,
      destinationAddress: '198.51.100.2',
      destinationPort: 443,
    });
    assert.equal(r.length, 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'.length);
    assert.equal(ok('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n').info.sourceAddress, '2001:db8::1');
  });
  it('accepts UNKNOWN without addresses', () => {
    assert.equal(ok('PROXY UNKNOWN\r\n').info.sourceAddress, null);
  });
  it('waits for more bytes when the line is incomplete', () => {
    assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4')), null);
    assert.equal(parseProxyHeader(Buffer.from('PRO')), null);
  });
  const bad: [string, string, RegExp][] = [
    ['not a header', 'GET / HTTP/1.1\r\n', /no PROXY protocol header/],
    ['wrong family', 'PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n', /not TCP4/],
    ['bad port', 'PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n', /port/],
    ['leading zero port', 'PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n', /port/],
    ['missing fields', 'PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n', /6 fields/],
    ['unknown transport', 'PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n', /transport/],
    ['too long', `PROXY TCP4 ${'1'.repeat(120)}`, /longer than 107/],
    ['bad prefix', 'PROXZ TCP4\r\n', /not a PROXY protocol v1/],
  ];
  for (const [name, text, message] of bad) {
    it(`rejects ${name}`, () =>
      assert.throws(
        () => parseProxyHeader(Buffer.from(text, 'latin1')),
        (e: Error) => e instanceof ProxyProtocolError && message.test(e.message),
      ));
  }
});

describe('PROXY protocol v2', () => {
  it('parses addresses and every named TLV, SSL sub-TLVs included', () => {
    const ssl = Buffer.concat([
      Buffer.from([0x05, 0, 0, 0, 0]), // client flags: SSL + cert, verify = 0 (verified)
      Buffer.from([0x21, 0, 7]),
      Buffer.from('TLSv1.3'),
      Buffer.from([0x22, 0, 6]),
      Buffer.from('client'),
      Buffer.from([0x23, 0, 22]),
      Buffer.from('TLS_AES_128_GCM_SHA256'),
    ]);
    const header = encodeProxyV2({
      source: ['203.0.113.7', 51000],
      destination: ['192.0.2.10', 443],
      tlvs: [
        [0x01, Buffer.from('h2')],
        [0x02, Buffer.from('echo.example')],
        [0x05, Buffer.from('abc')],
        [0x20, ssl],
        [0x30, Buffer.from('ns1')],
        [0x04, Buffer.alloc(3)],
        [0xe0, Buffer.from([0xbe, 0xef])],
      ],
    });
    const r = ok(Buffer.concat([header, Buffer.from('GET /')]));
    assert.equal(r.length, header.length);
    assert.deepEqual(r.info, {
      version: 2,
      command: 'PROXY',
      transport: 'TCP4',
      sourceAddress: '203.0.113.7',
      sourcePort: 51000,
      destinationAddress: '192.0.2.10',
      destinationPort: 443,
      tlvs: {
        alpn: 'h2',
        authority: 'echo.example',
        uniqueId: 'abc',
        netns: 'ns1',
        ssl: {
          client: 5,
          clientBits: ['SSL', 'CERT_SESS'],
          verify: 0,
          verified: true,
          version: 'TLSv1.3',
          cn: 'client',
          cipher: 'TLS_AES_128_GCM_SHA256',
        },
        other: [{ type: 0xe0, value: 'beef' }],
      },
    });
  });
  it('parses IPv6 and LOCAL', () => {
    const r = ok(encodeProxyV2({ source: ['2001:db8::7', 1], destination: ['::1', 2] }));
    assert.equal(r.info.sourceAddress, '2001:db8::7');
    assert.equal(r.info.destinationAddress, '::1');
    assert.equal(ok(encodeProxyV2({ command: 'LOCAL' })).info.command, 'LOCAL');
  });
  it('waits for the whole header', () => {
    const h = encodeProxyV2({ source: ['1.2.3.4', 1], destination: ['5.6.7.8', 2] });
    for (let n = 1; n < h.length; n++) assert.equal(parseProxyHeader(h.subarray(0, n)), null, `prefix of ${n}`);
  });
  const sig = V2_SIGNATURE;
  const bad: [string, Buffer, RegExp][] = [
    [
      'a bad signature',
      Buffer.concat([sig.subarray(0, 11), Buffer.from([0x00, 0x21, 0x11, 0, 0])]),
      /not a PROXY protocol v2/,
    ],
    ['version 1 in the binary header', Buffer.concat([sig, Buffer.from([0x11, 0x11, 0, 0])]), /version nibble/],
    ['an unknown command', Buffer.concat([sig, Buffer.from([0x2f, 0x11, 0, 0])]), /command/],
    ['an unknown family', Buffer.concat([sig, Buffer.from([0x21, 0x99, 0, 0])]), /family/],
    ['short addresses', Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, 4, 1, 2, 3, 4])]), /too short/],
    ['an overrunning TLV', Buffer.concat([sig, Buffer.from([0x21, 0x00, 0, 4, 0x01, 0, 9, 0x68])]), /overruns/],
    ['a truncated TLV', Buffer.concat([sig, Buffer.from([0x21, 0x00, 0, 2, 0x01, 0])]), /truncated/],
    ['a short SSL TLV', Buffer.concat([sig, Buffer.from([0x21, 0x00, 0, 5, 0x20, 0, 2, 1, 1])]), /SSL TLV/],
  ];
  for (const [name, buf, message] of bad) {
    it(`rejects ${name}`, () =>
      assert.throws(
        () => parseProxyHeader(buf),
        (e: Error) => e instanceof ProxyProtocolError && message.test(e.message),
      ));
  }
});

describe('PROXY protocol parser under fuzzing', () => {
  // A small seeded generator, so a failure can be replayed.
  function rng(seed: number) {
    let s = seed >>> 0;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 2 ** 32;
    };
  }
  const seeds = [
    Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'),
    Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'),
    encodeProxyV2({
      source: ['203.0.113.7', 51000],
      destination: ['192.0.2.10', 443],
      tlvs: [
        [0x01, Buffer.from('h2')],
        [0x20, Buffer.from([1, 0, 0, 0, 0, 0x21, 0, 1, 0x41])],
      ],
    }),
    encodeProxyV2({ source: ['2001:db8::7', 1], destination: ['::1', 2] }),
  ];

  it('only ever returns null, a header within the input, or a ProxyProtocolError (30,000 cases)', () => {
    const random = rng(0x5eed);
    for (let i = 0; i < 30_000; i++) {
      const base = Buffer.from(seeds[i % seeds.length]!);
      const kind = i % 3;
      let input: Buffer;
      if (kind === 0) {
        // Flip a few bytes of a valid header.
        for (let k = 0; k < 1 + Math.floor(random() * 4); k++)
          base[Math.floor(random() * base.length)] = Math.floor(random() * 256);
        input = base;
      } else if (kind === 1) {
        // Cut it short, or append noise.
        input =
          random() < 0.5
            ? base.subarray(0, Math.floor(random() * base.length))
            : Buffer.concat([base, Buffer.from(Array.from({ length: 8 }, () => Math.floor(random() * 256)))]);
      } else {
        // Pure noise, sometimes behind a valid signature.
        const noise = Buffer.from(Array.from({ length: Math.floor(random() * 80) }, () => Math.floor(random() * 256)));
        input = random() < 0.5 ? Buffer.concat([V2_SIGNATURE, noise]) : noise;
      }
      try {
        const r = parseProxyHeader(input);
        if (r !== null) assert.ok(r.length > 0 && r.length <= input.length, `case ${i}: length within input`);
      } catch (err) {
        assert.ok(err instanceof ProxyProtocolError, `case ${i}: ${String(err)} for ${input.toString('hex')}`);
      }
    }
  });
});
