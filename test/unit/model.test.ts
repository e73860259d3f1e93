import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeBody, parseCookies, splitTarget } from '../../src/model.ts';

describe('request model', () => {
  it('splits origin-form targets', () => {
    assert.deepEqual(splitTarget('/a%20b?x=1&x=2&y'), { path: '/a b', query: { x: ['1', '2'], y: [''] } });
  });
  it('keeps undecodable paths as sent', () => {
    assert.equal(splitTarget('/bad%zz').path, '/bad%zz');
  });
  it('splits absolute-form targets', () => {
    assert.deepEqual(splitTarget('http://example.com/p?q=1'), { path: '/p', query: { q: ['1'] } });
  });
  it('keeps asterisk-form as is', () => {
    assert.equal(splitTarget('*').path, '*');
  });
  it('parses cookies, first one wins', () => {
    assert.deepEqual(parseCookies('a=1; b="two"; a=3; junk'), { a: '1', b: 'two' });
  });

  const bodies: [string, Buffer, boolean, string, string][] = [
    ['text', Buffer.from('héllo'), false, 'utf8', 'héllo'],
    ['binary', Buffer.from([0xff, 0x00, 0x10]), false, 'base64', '/wAQ'],
    ['NUL makes it binary', Buffer.from('a\u0000b'), false, 'base64', 'YQBi'],
    ['cut inside a multi-byte character', Buffer.from('aé').subarray(0, 2), true, 'utf8', 'a'],
  ];
  for (const [name, kept, truncated, encoding, data] of bodies) {
    it(`describes a ${name} body`, () => {
      const d = describeBody({ bytes: kept.length + (truncated ? 10 : 0), kept, truncated });
      assert.equal(d.encoding, encoding);
      assert.equal(d.data, data);
      assert.equal(d.truncated, truncated);
    });
  }
});
