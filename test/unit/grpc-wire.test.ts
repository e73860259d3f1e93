// gRPC's wire form as this server reads and writes it: content types, the message
// prefix across any chunking, grpc-timeout, grpc-message, gRPC-Web's trailer frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Base64Decoder,
  MessageReader,
  Status,
  WireError,
  encodeMessage,
  frame,
  grpcFlavour,
  parseTimeout,
  trailerFrame,
} from '../../src/adapters/grpc/wire.ts';

describe('gRPC wire form', () => {
  it('tells the gRPC content types apart, and nothing else is one', () => {
    const table: [string | undefined, string | null][] = [
      ['application/grpc', 'grpc'],
      ['application/grpc+proto', 'grpc'],
      ['Application/GRPC; charset=utf-8', 'grpc'],
      ['application/grpc-web', 'web'],
      ['application/grpc-web+proto', 'web'],
      ['application/grpc-web-text', 'web-text'],
      ['application/grpc-web-text+proto', 'web-text'],
      ['application/grpc+json', null],
      ['application/grpc-web+json', null],
      ['application/grpcx', null],
      ['application/json', null],
      [undefined, null],
      ['', null],
    ];
    for (const [type, flavour] of table) assert.equal(grpcFlavour(type), flavour, String(type));
  });

  it('reads messages whatever the chunking, one byte at a time included', () => {
    const messages = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 7)];
    const wire = Buffer.concat(messages.map(frame));
    for (const size of [1, 2, 5, 6, 64, wire.length]) {
      const reader = new MessageReader(1024);
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += size) got.push(...reader.push(wire.subarray(i, i + size)));
      assert.deepEqual(got, messages, `chunks of ${size}`);
      assert.equal(reader.partial, false);
      assert.equal(reader.messages, 3);
    }
    const cut = new MessageReader(1024);
    cut.push(frame(Buffer.from('abc')).subarray(0, 6));
    assert.equal(cut.partial, true);
  });

  it('refuses a message over the limit from its prefix, and a compressed one', () => {
    const prefix = Buffer.from([0, 0, 0, 4, 1]); // 1025 bytes declared, none sent
    assert.throws(
      () => new MessageReader(1024).push(prefix),
      (e: unknown) => e instanceof WireError && e.code === Status.RESOURCE_EXHAUSTED,
    );
    assert.throws(
      () => new MessageReader(1024).push(Buffer.from([1, 0, 0, 0, 0])),
      (e: unknown) => e instanceof WireError && e.code === Status.UNIMPLEMENTED,
    );
  });

  it('parses grpc-timeout: 8 digits at most and a unit, rounded up to a millisecond', () => {
    assert.equal(parseTimeout(undefined), null);
    assert.equal(parseTimeout('1H'), 3_600_000);
    assert.equal(parseTimeout('2M'), 120_000);
    assert.equal(parseTimeout('3S'), 3000);
    assert.equal(parseTimeout('250m'), 250);
    assert.equal(parseTimeout('1500u'), 2);
    assert.equal(parseTimeout('1n'), 1);
    for (const bad of ['', '123456789S', '1s', 'S', '-1S', '1.5S']) assert.equal(parseTimeout(bad), undefined, bad);
  });

  it('percent-encodes grpc-message outside printable ASCII, and %', () => {
    assert.equal(encodeMessage('plain text'), 'plain text');
    assert.equal(encodeMessage('100% €\n'), '100%25 %E2%82%AC%0A');
  });

  it("writes gRPC-Web's trailer frame and reads base64 across chunks", () => {
    const t = trailerFrame({ 'grpc-status': '14', 'grpc-message': 'x' });
    assert.equal(t[0], 0x80);
    assert.equal(t.subarray(5).toString(), 'grpc-status:14\r\ngrpc-message:x\r\n');
    const text = Buffer.from(frame(Buffer.from('hello')).toString('base64'));
    const d = new Base64Decoder();
    const out = Buffer.concat([d.push(text.subarray(0, 3)), d.push(text.subarray(3, 9)), d.push(text.subarray(9))]);
    assert.deepEqual(out, frame(Buffer.from('hello')));
  });
});
