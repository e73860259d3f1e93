import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientKeyed, describeBody, parseCookies, splitTarget } from '../../src/echo/model.ts';

/** The model's maps have no prototype; compare their contents. */
const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

describe('request model', () => {
  it('splits origin-form targets', () => {
    assert.deepEqual(plain(splitTarget('/a%20b?x=1&x=2&y')), { path: '/a b', query: { x: ['1', '2'], y: [''] } });
  });
  it('keeps undecodable paths as sent', () => {
    assert.equal(splitTarget('/bad%zz').path, '/bad%zz');
  });
  it('splits absolute-form targets', () => {
    assert.deepEqual(plain(splitTarget('http://example.com/p?q=1')), { path: '/p', query: { q: ['1'] } });
  });
  it('keeps asterisk-form as is', () => {
    assert.equal(splitTarget('*').path, '*');
  });
  it('parses cookies, first one wins', () => {
    assert.deepEqual(plain(parseCookies('a=1; b="two"; a=3; junk')), { a: '1', b: 'two' });
  });
  it('keeps client-chosen names that are Object.prototype members as ordinary keys', () => {
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
    const cookies = parseCookies(names.map((n, i) => `${n}=${i}`).join('; '));
    const { query } = splitTarget(`/?${names.map((n, i) => `${n}=${i}`).join('&')}`);
    names.forEach((n, i) => {
      assert.equal(Object.getOwnPropertyDescriptor(cookies, n)?.value, String(i), `cookie ${n}`);
      assert.deepEqual(Object.getOwnPropertyDescriptor(query, n)?.value, [String(i)], `query ${n}`);
    });
    assert.equal(
      JSON.stringify(cookies),
      '{"__proto__":"0","constructor":"1","toString":"2","hasOwnProperty":"3","valueOf":"4"}',
    );
  });

  it('inherits nothing in client-keyed maps: no Object.prototype member reads back, and none can be added through them', () => {
    const map = clientKeyed<string>();
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      assert.equal((map as Record<string, unknown>)[name], undefined, name);
      assert.equal(name in map, false, name);
    }
    map['__proto__'] = 'x';
    assert.deepEqual(Object.keys(map), ['__proto__']);
    assert.equal(Object.isFrozen(Object.getPrototypeOf(map)), true);
    assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(map)), null);
  });

  it('splits queries exactly as URLSearchParams does (fuzzed: separators, empty and repeated names, leading ?, %, +, non-ASCII, surrogates)', () => {
    const pool = [
      'a',
      'b',
      '=',
      '=',
      '&',
      '&',
      '?',
      '%',
      '%2',
      '%41',
      '%zz',
      '%C3%A9',
      '+',
      '#',
      ';',
      ' ',
      '\u00e9',
      '\u00ff',
      '\u4e2d',
      '\ud83d',
      '\ude00',
      '__proto__',
      'constructor',
    ];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      let query = '';
      const len = rand(12);
      for (let j = 0; j < len; j++) query += pool[rand(pool.length)]!;
      const expected = clientKeyed<string[]>();
      for (const [k, v] of new URLSearchParams(query)) (expected[k] ??= []).push(v);
      const got = splitTarget(`/p?${query}`).query;
      assert.deepEqual(Object.entries(got), Object.entries(expected), JSON.stringify(query));
      assert.equal(JSON.stringify(got), JSON.stringify(expected), JSON.stringify(query));
    }
  });

  it('reads a long query of names without values in linear time', () => {
    const query = 'a&'.repeat(200_000) + 'b=1';
    const start = performance.now();
    const got = splitTarget(`/?${query}`).query;
    assert.equal(got.a!.length, 200_000);
    assert.deepEqual(got.b, ['1']);
    assert.ok(performance.now() - start < 1000, `${(performance.now() - start).toFixed(0)} ms`);
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
