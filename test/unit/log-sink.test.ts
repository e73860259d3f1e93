// The log sink encodes lines into its buffer on arrival and writes batches from one
// buffer while the next batch gathers in the other. Checked against a real file:
// every accepted line arrives whole and in order, across bursts larger than the
// buffers and lines arriving while a write is in flight; the bound counts bytes.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LogSink } from '../../src/ops/log-sink.ts';

const dir = mkdtempSync(join(tmpdir(), 'echo-log-sink-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function fileSink(limit?: number, reporter?: LogSink): { sink: LogSink; read: () => string; close: () => void } {
  const file = join(dir, `sink-${files++}.log`);
  const fd = openSync(file, 'w');
  const sink = new LogSink(fd, { ...(limit === undefined ? {} : { limit }), reporter: reporter ?? null });
  return { sink, read: () => readFileSync(file, 'utf8'), close: () => closeSync(fd) };
}

const flushed = (sink: LogSink) => new Promise<void>((resolve) => sink.flush(() => resolve()));
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('LogSink', () => {
  it('writes every line whole and in order: mixed write/writeLine, ASCII and UTF-8, bursts beyond its buffers, lines arriving during writes', async () => {
    const { sink, read, close } = fileSink();
    const expected: string[] = [];
    let n = 0;
    const line = () => {
      const i = n++;
      const kind = i % 4;
      const text =
        kind === 0
          ? `{"n":${i},"pad":"${'p'.repeat(i % 300)}"}\n`
          : kind === 1
            ? `{"n":${i},"text":"caf\u00e9 \u4e2d \u{1f600}"}\n`
            : kind === 2
              ? `two lines ${i}\nsecond ${i}\n`
              : `{"n":${i},"ascii":true}\n`;
      expected.push(text);
      const ok = kind === 1 ? sink.writeLine(text, false) : kind === 3 ? sink.writeLine(text, true) : sink.write(text);
      assert.ok(ok, `line ${i} accepted`);
    };
    for (let i = 0; i < 3000; i++) line(); // about 500 KiB at once: larger than both buffers
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 40; i++) line();
      await tick(); // some rounds land while a write is in flight
    }
    await flushed(sink);
    close();
    assert.equal(sink.dropped, 0);
    assert.equal(read(), expected.join(''));
  });

  it('bounds what waits in bytes, not characters: drops and counts what does not fit, and reports it', async () => {
    const reports = fileSink(64 * 1024);
    const { sink, read, close } = fileSink(100, reports.sink);
    assert.equal(sink.write(`${'a'.repeat(74)}\n`), true); // 75 bytes
    // 11 characters but 31 bytes: over the bound (86 characters, 106 bytes) by bytes only.
    assert.equal(sink.writeLine(`${'\u4e2d'.repeat(10)}\n`, false), false);
    assert.equal(sink.writeLine(`${'b'.repeat(24)}\n`, true), true); // exactly 100 bytes waiting
    assert.equal(sink.write('c\nd\n'), false); // two lines, both dropped
    assert.equal(sink.dropped, 3);
    await flushed(sink);
    assert.equal(sink.writeLine('after\n', true), true, 'room again once written');
    await flushed(sink);
    await flushed(reports.sink);
    close();
    reports.close();
    assert.equal(read(), `${'a'.repeat(74)}\n${'b'.repeat(24)}\nafter\n`);
    assert.match(
      reports.read(),
      /^echo-server: 1 log line\(s\) dropped: the log destination is not keeping up \(total 1\)\n$/,
    );
  });

  it('calls flush back at once when nothing waits', () => {
    const { sink, close } = fileSink();
    let called = false;
    sink.flush(() => {
      called = true;
    });
    assert.equal(called, true);
    close();
  });
});
