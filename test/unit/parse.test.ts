import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ParseError, parseBoolean, parseDuration, parseInteger, parseSize } from '../../src/util/parse.ts';

describe('bounded parsers', () => {
  const ok: [string, () => unknown, unknown][] = [
    ['integer', () => parseInteger('42', 0, 100), 42],
    ['integer with spaces', () => parseInteger(' 7 ', 0, 100), 7],
    ['duration ms', () => parseDuration('250ms', 1000), 250],
    ['duration bare', () => parseDuration('250', 1000), 250],
    ['duration s', () => parseDuration('1.5s', 2000), 1500],
    ['duration m', () => parseDuration('2m', 3_600_000), 120_000],
    ['size bare', () => parseSize('1024', 2048), 1024],
    ['size KiB', () => parseSize('64KiB', 1e6), 65536],
    ['size MB', () => parseSize('10MB', 1e8), 10_000_000],
    ['size g', () => parseSize('1g', 2 ** 31), 2 ** 30],
    ['boolean yes', () => parseBoolean('yes'), true],
    ['boolean OFF', () => parseBoolean('OFF'), false],
  ];
  for (const [name, run, want] of ok) {
    it(`accepts ${name}`, () => assert.equal(run(), want));
  }

  const bad: [string, () => unknown, RegExp][] = [
    ['negative integer', () => parseInteger('-1', 0, 10), /not a whole number/],
    ['hex integer', () => parseInteger('0x10', 0, 100), /not a whole number/],
    ['exponent', () => parseInteger('1e3', 0, 10000), /not a whole number/],
    ['integer above max', () => parseInteger('11', 0, 10), /out of range 0\.\.10/],
    ['huge integer', () => parseInteger('99999999999999999999', 0, 10), /not a whole number/],
    ['duration unit', () => parseDuration('5 days', 1e9), /not a duration/],
    ['duration above max', () => parseDuration('31s', 30_000), /exceeds the maximum of 30s/],
    ['negative duration', () => parseDuration('-5s', 30_000), /not a duration/],
    ['size unit', () => parseSize('5 parsecs', 1e9), /not a size/],
    ['size above max', () => parseSize('2MiB', 1024 ** 2), /exceeds the maximum of 1MiB/],
    ['boolean', () => parseBoolean('maybe'), /not a boolean/],
  ];
  for (const [name, run, message] of bad) {
    it(`rejects ${name}`, () =>
      assert.throws(run, (err: Error) => err instanceof ParseError && message.test(err.message)));
  }
});
