import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import {
  forwardedFor,
  hopAddress,
  resolveClient,
  type ClientIpHeader,
  type ForwardingHeaders,
} from '../../src/echo/client-ip.ts';

const trusted = new NetworkSet(['10.0.0.0/8', 'loopback']);
const none: ForwardingHeaders = { forwarded: null, xForwardedFor: null, xRealIp: null };

describe('client IP resolution', () => {
  const cases: {
    name: string;
    peer: string;
    h: Partial<ForwardingHeaders>;
    use?: ClientIpHeader;
    set?: NetworkSet;
    ip: string;
    source: string;
  }[] = [
    { name: 'no proxy headers', peer: '203.0.113.5', h: {}, ip: '203.0.113.5', source: 'peer' },
    { name: 'mapped IPv4 peer', peer: '::ffff:203.0.113.5', h: {}, ip: '203.0.113.5', source: 'peer' },
    {
      name: 'untrusted peer cannot spoof XFF',
      peer: '203.0.113.5',
      h: { xForwardedFor: '1.2.3.4' },
      ip: '203.0.113.5',
      source: 'peer',
    },
    {
      name: 'untrusted peer cannot spoof Forwarded',
      peer: '198.51.100.1',
      h: { forwarded: 'for=1.2.3.4' },
      use: 'forwarded',
      ip: '198.51.100.1',
      source: 'peer',
    },
    {
      name: 'trusted peer, XFF single',
      peer: '10.0.0.1',
      h: { xForwardedFor: '198.51.100.7' },
      ip: '198.51.100.7',
      source: 'x-forwarded-for',
    },
    {
      name: 'trusted chain skips trusted hops',
      peer: '10.0.0.1',
      h: { xForwardedFor: '1.1.1.1, 198.51.100.7, 10.0.0.2' },
      ip: '198.51.100.7',
      source: 'x-forwarded-for',
    },
    {
      name: 'spoofed left entry is not believed',
      peer: '10.0.0.1',
      h: { xForwardedFor: '6.6.6.6, 198.51.100.7' },
      ip: '198.51.100.7',
      source: 'x-forwarded-for',
    },
    {
      name: 'all hops trusted gives leftmost',
      peer: '127.0.0.1',
      h: { xForwardedFor: '10.1.1.1, 10.2.2.2' },
      ip: '10.1.1.1',
      source: 'x-forwarded-for',
    },
    {
      name: 'garbage hop stops the walk',
      peer: '10.0.0.1',
      h: { xForwardedFor: '1.2.3.4, unknown' },
      ip: '10.0.0.1',
      source: 'peer',
    },
    {
      name: 'Forwarded when chosen, XFF ignored',
      peer: '10.0.0.1',
      h: { forwarded: 'for="[2001:db8::1]:4711";proto=https', xForwardedFor: '5.5.5.5' },
      use: 'forwarded',
      ip: '2001:db8::1',
      source: 'forwarded',
    },
    {
      name: 'Forwarded with port',
      peer: '10.0.0.1',
      h: { forwarded: 'for=192.0.2.60:8080;by=10.0.0.1' },
      use: 'forwarded',
      ip: '192.0.2.60',
      source: 'forwarded',
    },
    {
      name: 'Forwarded for=unknown or proto=https cannot hide the chosen XFF',
      peer: '10.0.0.1',
      h: { forwarded: 'for=unknown;proto=https', xForwardedFor: '198.51.100.7' },
      ip: '198.51.100.7',
      source: 'x-forwarded-for',
    },
    {
      name: 'XFF not chosen is only shown',
      peer: '10.0.0.1',
      h: { xForwardedFor: '198.51.100.7' },
      use: 'forwarded',
      ip: '10.0.0.1',
      source: 'peer',
    },
    {
      name: 'X-Real-IP when chosen',
      peer: '10.0.0.1',
      h: { xRealIp: '192.0.2.9' },
      use: 'x-real-ip',
      ip: '192.0.2.9',
      source: 'x-real-ip',
    },
    {
      name: "behind an X-Real-IP proxy the client's own XFF does not win",
      peer: '10.0.0.1',
      h: { xRealIp: '192.0.2.9', xForwardedFor: '6.6.6.6' },
      use: 'x-real-ip',
      ip: '192.0.2.9',
      source: 'x-real-ip',
    },
    {
      name: 'X-Real-IP garbage ignored',
      peer: '10.0.0.1',
      h: { xRealIp: '<script>' },
      use: 'x-real-ip',
      ip: '10.0.0.1',
      source: 'peer',
    },
    {
      name: 'empty trust list trusts nobody',
      peer: '127.0.0.1',
      h: { xForwardedFor: '1.2.3.4' },
      set: new NetworkSet([]),
      ip: '127.0.0.1',
      source: 'peer',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const info = resolveClient(c.peer, { ...none, ...c.h }, c.set ?? trusted, c.use ?? 'x-forwarded-for');
      assert.equal(info.trustedHeader, c.use ?? 'x-forwarded-for');
      assert.equal(info.ip, c.ip);
      assert.equal(info.source, c.source);
    });
  }

  it('keeps the raw chain for display', () => {
    const info = resolveClient('10.0.0.1', { ...none, xForwardedFor: '1.1.1.1, 2.2.2.2' }, trusted);
    assert.equal(info.xForwardedFor, '1.1.1.1, 2.2.2.2');
    assert.equal(info.peer, '10.0.0.1');
    assert.equal(info.peerTrusted, true);
  });

  it('parses RFC 7239 for= values with quotes and several elements', () => {
    assert.deepEqual(forwardedFor('for=192.0.2.43, for="[2001:db8:cafe::17]";proto=http, by=1.2.3.4;for="x,y"'), [
      '192.0.2.43',
      '[2001:db8:cafe::17]',
      'x,y',
    ]);
  });

  it('reads hop addresses', () => {
    assert.equal(hopAddress('[::1]:80'), '::1');
    assert.equal(hopAddress('1.2.3.4:80'), '1.2.3.4');
    assert.equal(hopAddress('2001:db8::1'), '2001:db8::1');
    assert.equal(hopAddress('_hidden'), null);
  });

  it('rejects bad trust entries', () => {
    assert.throws(() => new NetworkSet(['10.0.0.0/33']), /invalid prefix/);
    assert.throws(() => new NetworkSet(['example.com']), /not an IP address/);
  });
});
