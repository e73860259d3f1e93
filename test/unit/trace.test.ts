import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { traceOf } from '../../src/echo/trace.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceOf over raw headers', () => {
  it('finds x-b3-* in any letter case, with X-B3-Flags: 1 as a sampling decision', () => {
    assert.deepEqual(traceOf(['Host', 'h', 'x-B3-tRaCeId', TRACE, 'X-B3-SPANID', SPAN, 'X-B3-Flags', '1']), {
      traceId: TRACE,
      parentId: SPAN,
      sampled: true,
      source: 'x-b3',
    });
  });

  for (const repeated of ['X-B3-TraceId', 'X-B3-SpanId', 'X-B3-Sampled', 'X-B3-Flags']) {
    it(`a repeated ${repeated} makes x-b3-* ambiguous: no trace`, () => {
      const raw = ['X-B3-TraceId', TRACE, 'X-B3-SpanId', SPAN, 'X-B3-Sampled', '1', 'X-B3-Flags', '1'];
      assert.notEqual(traceOf(raw), null);
      const value = raw[raw.indexOf(repeated) + 1]!;
      assert.equal(traceOf([...raw, repeated.toLowerCase(), value]), null);
    });
  }

  it('a repeated b3 is ambiguous, and does not fall through to x-b3-*', () => {
    const b3 = `${TRACE}-${SPAN}-1`;
    assert.equal(traceOf(['b3', b3, 'B3', b3, 'X-B3-TraceId', TRACE, 'X-B3-SpanId', SPAN]), null);
  });

  it('no trace headers, or only look-alikes: null', () => {
    assert.equal(traceOf([]), null);
    assert.equal(traceOf(['Host', 'h', 'Trace', 'x', 'B3x', 'y', 'X-B3', 'z', 'X-B3-Other', 'w']), null);
  });
});
