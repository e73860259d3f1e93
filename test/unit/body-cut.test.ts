// The count behind truncate:SIZE and reset-after:SIZE, on its own: which bytes of
// each write go out, when the cut is due, and what it let through (the record's
// bytesOut). Both HTTP adapters cut on it; test/protocols/faults.test.ts drives the
// cut itself over real connections.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectionFault } from '../../src/core/answer-port.ts';
import { BodyCut } from '../../src/core/body-cut.ts';

function cutAt(bytes: number, kind: 'truncate' | 'reset-after' = 'truncate'): BodyCut {
  const fault: ConnectionFault = { kind, bytes, h2Code: 8, label: `${kind}:${bytes}` };
  return new BodyCut(fault);
}

/** The bytes as text, to compare pieces readably. */
function text(piece: Uint8Array | null): string | null {
  return piece === null ? null : Buffer.from(piece).toString('latin1');
}

describe('BodyCut', () => {
  it('passes writes under the size whole, counting them, with no cut yet', () => {
    const c = cutAt(10);
    assert.equal(text(c.take('abc', false)), 'abc');
    assert.equal(c.sent, 3);
    assert.equal(c.done, false);
  });

  it('a write that reaches the size exactly is the last piece: whole, and the cut is due', () => {
    const c = cutAt(4);
    assert.equal(text(c.take(Buffer.from('abcd'), false)), 'abcd');
    assert.equal(c.sent, 4);
    assert.equal(c.done, true);
  });

  it('a write over the size goes only up to it', () => {
    const c = cutAt(4);
    assert.equal(text(c.take('abcdefgh', false)), 'abcd');
    assert.equal(c.sent, 4);
    assert.equal(c.done, true);
  });

  it('counts across several writes and cuts the one that crosses the size', () => {
    const c = cutAt(10);
    assert.equal(text(c.take('abc', false)), 'abc');
    assert.equal(text(c.take(new Uint8Array(Buffer.from('defg')), false)), 'defg');
    assert.equal(c.sent, 7);
    assert.equal(c.done, false);
    assert.equal(text(c.take('hijklm', false)), 'hij');
    assert.equal(c.sent, 10);
    assert.equal(c.done, true);
  });

  it('nothing goes after the cut: every later write, the last too, takes nothing', () => {
    const c = cutAt(2);
    assert.equal(text(c.take('abc', false)), 'ab');
    assert.equal(c.take('d', false), null);
    assert.equal(c.take('e', true), null);
    assert.equal(c.sent, 2);
    assert.equal(c.done, true);
  });

  it('a body shorter than the size goes whole and is cut all the same at its last write', () => {
    const c = cutAt(100);
    assert.equal(text(c.take('abc', false)), 'abc');
    assert.equal(c.done, false);
    assert.equal(text(c.take('de', true)), 'de');
    assert.equal(c.sent, 5);
    assert.equal(c.done, true);
  });

  it('a last write of zero bytes (end() with no chunk) is the cut, with nothing more sent', () => {
    const c = cutAt(100);
    assert.equal(text(c.take('abc', false)), 'abc');
    const piece = c.take(new Uint8Array(0), true);
    assert.equal(piece?.length, 0);
    assert.equal(c.sent, 3);
    assert.equal(c.done, true);
  });

  it('a size of zero cuts at the first write, before any byte', () => {
    const c = cutAt(0, 'reset-after');
    assert.equal(c.take('abc', false)?.length, 0);
    assert.equal(c.sent, 0);
    assert.equal(c.done, true);
    assert.equal(c.fault.kind, 'reset-after');
  });

  it('counts a string as its UTF-8 bytes, not its characters, and cuts inside a character at the size', () => {
    // 'é' is 2 bytes in UTF-8, '€' 3: "aé€" is 6 bytes for 3 characters.
    const c = cutAt(8);
    const first = c.take('aé€', false);
    assert.deepEqual(first, Buffer.from('aé€', 'utf8'));
    assert.equal(c.sent, 6);
    assert.equal(c.done, false);
    // Two bytes left: the first two of '€€', a character cut in half, as on the wire.
    const second = c.take('€€', false);
    assert.deepEqual(second, Buffer.from([0xe2, 0x82]));
    assert.equal(c.sent, 8);
    assert.equal(c.done, true);
  });

  it('a multi-byte string that fits the size to the byte, as the last write, goes whole', () => {
    const c = cutAt(6);
    assert.deepEqual(c.take('aé€', true), Buffer.from('aé€', 'utf8'));
    assert.equal(c.sent, 6);
    assert.equal(c.done, true);
  });
});
