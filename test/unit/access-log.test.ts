// The access line is written by hand for speed; it must stay byte for byte the line
// the general way writes: JSON.stringify of the entry in its documented field order,
// with the controls a terminal obeys spelled out, client text capped. Checked through
// both real destinations: an injected stream (strings) and the server's own LogSink
// writing to a file (bytes copied straight into its buffer).
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { durationText } from '../../src/ops/duration-text.ts';
import { LogSink } from '../../src/ops/log-sink.ts';
import {
  LOG_METHOD_MAX,
  LOG_URI_MAX,
  LOG_USER_AGENT_MAX,
  createAccessLog,
  createLogger,
  type AccessEntry,
} from '../../src/ops/logger.ts';
import { escapeRawControls, plainJson } from '../../src/util/escape.ts';

const dir = mkdtempSync(join(tmpdir(), 'echo-access-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The line as the general way writes it, time taken from the line itself. */
function reference(e: AccessEntry, time: string): string {
  const cut = (s: string, max: number) => (s.length > max ? s.slice(0, max) : s);
  const truncated =
    e.uri.length > LOG_URI_MAX || (e.userAgent?.length ?? 0) > LOG_USER_AGENT_MAX || e.method.length > LOG_METHOD_MAX;
  const line = {
    level: 'info',
    time,
    reqId: e.reqId,
    method: cut(e.method, LOG_METHOD_MAX),
    uri: cut(e.uri, LOG_URI_MAX),
    status: e.status,
    bytesIn: e.bytesIn,
    bytesOut: e.bytesOut,
    durationMs: e.durationMs,
    clientIp: e.clientIp,
    ...(e.userAgent === undefined ? {} : { userAgent: cut(e.userAgent, LOG_USER_AGENT_MAX) }),
    ...(truncated ? { truncated: true } : {}),
    ...(e.aborted ? { aborted: true } : {}),
    msg: 'request',
  };
  return escapeRawControls(JSON.stringify(line)) + '\n';
}

const timeOf = (line: string) => (JSON.parse(line) as { time: string }).time;

/** Each entry through an injected stream; returns the lines as written. */
function throughStream(entries: AccessEntry[]): string[] {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ level: 'info', format: 'json', destination: dest });
  const log = createAccessLog(logger);
  for (const e of entries) log(e);
  return lines;
}

/** Each entry through a LogSink writing to a file; returns the file's lines. */
async function throughSink(entries: AccessEntry[], name: string): Promise<string[]> {
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  const sink = new LogSink(fd, { limit: 64 * 1024 * 1024 }); // every line kept: the bound has its own test
  const logger = createLogger({ level: 'info', format: 'json', destination: sink as unknown as NodeJS.WritableStream });
  const log = createAccessLog(logger);
  for (const e of entries) log(e);
  await new Promise<void>((resolve) => sink.flush(() => resolve()));
  closeSync(fd);
  assert.equal(sink.dropped, 0);
  const text = readFileSync(file, 'utf8');
  return text.split(/(?<=\n)/).filter((l) => l !== '');
}

const base: AccessEntry = {
  reqId: '528dbba2-089f-4e08-be08-52f53c21c073',
  method: 'GET',
  uri: '/bench?x=1',
  status: 200,
  bytesIn: 0,
  bytesOut: 384,
  durationMs: 1.234,
  clientIp: '127.0.0.1',
  userAgent: 'wrk/4.2.0',
  aborted: false,
};

const tricky: AccessEntry[] = [
  base,
  { ...base, userAgent: undefined },
  { ...base, aborted: true, status: 499 },
  { ...base, uri: '/"quoted"\\back\\slash', userAgent: 'say "hi"' },
  { ...base, uri: '/line\nbreak\r\tand\x00nul\x1b[31m', userAgent: 'bell\x07' },
  { ...base, uri: '/del\x7f c1\x85\x9b nel', userAgent: 'sep\u2028para\u2029' },
  { ...base, uri: '/caf\u00e9/\u4e2d\u6587/\u{1f600}', userAgent: 'Mozilla/5.0 (\u00fc)' },
  { ...base, uri: '/lone\ud800high', userAgent: 'lone\udfff low' },
  { ...base, uri: '/' + 'x'.repeat(LOG_URI_MAX + 500) },
  { ...base, uri: '/' + 'x'.repeat(LOG_URI_MAX - 1) },
  { ...base, uri: '/' + 'x'.repeat(LOG_URI_MAX) },
  { ...base, uri: '/\u00e9'.repeat(LOG_URI_MAX) }, // cut in the middle of nothing: UTF-16 units are what is counted
  { ...base, uri: '/\u{1f600}'.repeat(LOG_URI_MAX) }, // the cut may split a surrogate pair: a lone one is escaped
  { ...base, userAgent: 'u'.repeat(LOG_USER_AGENT_MAX + 1) },
  { ...base, method: 'M'.repeat(LOG_METHOD_MAX + 3) },
  { ...base, durationMs: 0 },
  { ...base, durationMs: 0.001 },
  { ...base, durationMs: 1000 },
  { ...base, durationMs: 59999.999 },
  { ...base, durationMs: 1e-7 },
  { ...base, durationMs: 12.3456789 },
  { ...base, bytesIn: 10 * 1024 * 1024, bytesOut: 104857600, status: 503 },
  { ...base, method: 'CONNECT', uri: 'example.com:443', clientIp: '2001:db8::1' },
  { ...base, uri: '', userAgent: '' },
  { ...base, reqId: 'r'.repeat(300), clientIp: `fe80::1%${'x'.repeat(80)}` }, // never cut
  { ...base, reqId: 'id"with\\odd\u0085text', clientIp: '' },
];

describe('the access line', () => {
  it('is the line JSON.stringify writes, for quotes, controls, C1, line separators, non-ASCII, lone surrogates and over-long fields, through a stream', () => {
    const lines = throughStream(tricky);
    assert.equal(lines.length, tricky.length);
    tricky.forEach((e, i) => {
      assert.equal(lines[i], reference(e, timeOf(lines[i]!)), `entry ${i}`);
    });
  });

  it("is the same bytes through the server's own sink (a file), every line valid JSON with the fields as logged", async () => {
    const lines = await throughSink(tricky, 'tricky.log');
    assert.equal(lines.length, tricky.length);
    tricky.forEach((e, i) => {
      const line = lines[i]!;
      assert.equal(line, reference(e, timeOf(line)), `entry ${i}`);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      // Escaped or not, every character reads back as it was sent (lone surrogates too), within the cap.
      assert.equal(parsed.uri, e.uri.slice(0, LOG_URI_MAX), `uri of entry ${i}`);
      assert.equal(parsed.durationMs, e.durationMs);
      assert.equal(parsed.msg, 'request');
    });
  });

  it('matches on fuzzed client text (random mixes of ASCII, escapes, controls, C1, separators, non-ASCII and surrogates), both ways', async () => {
    const pool = [
      'a',
      'Z',
      '/',
      '?',
      '=',
      '&',
      '%',
      ' ',
      '"',
      '\\',
      '\n',
      '\x00',
      '\x1f',
      '\x7f',
      '\x80',
      '\x9f',
      '\u00a0',
      '\u00ff',
      '\u2028',
      '\u2029',
      '\u4e2d',
      '\ud83d',
      '\ude00',
      '\ud83d\ude00',
      '\ufffd',
    ];
    let seed = 13;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const text = (max: number) => {
      const len = rand(5) === 0 ? max - 2 + rand(5) : rand(40);
      let s = '';
      for (let i = 0; i < len; i++)
        s += rand(3) === 0 ? pool[rand(pool.length)]! : String.fromCharCode(0x20 + rand(95));
      return s;
    };
    const entries: AccessEntry[] = [];
    for (let i = 0; i < 1500; i++) {
      entries.push({
        ...base,
        uri: text(LOG_URI_MAX),
        userAgent: rand(4) === 0 ? undefined : text(LOG_USER_AGENT_MAX),
        durationMs: Math.round(rand(100_000_000) * (rand(2) === 0 ? 1 : 0.001)) / 1000,
        status: 100 + rand(500),
        aborted: rand(10) === 0,
      });
    }
    const viaStream = throughStream(entries);
    const viaSink = await throughSink(entries, 'fuzz.log');
    entries.forEach((e, i) => {
      const expected = reference(e, timeOf(viaStream[i]!));
      assert.equal(viaStream[i], expected, `stream, entry ${i}: ${JSON.stringify(e.uri)}`);
      assert.equal(viaSink[i], reference(e, timeOf(viaSink[i]!)), `sink, entry ${i}: ${JSON.stringify(e.uri)}`);
      assert.equal(typeof JSON.parse(viaSink[i]), 'object');
    });
  });
});

describe('access-line pieces', () => {
  it('durationText is String(ms) for every microsecond-rounded duration up to 2000 s, and for sampled ones far beyond', () => {
    for (let k = 0; k <= 2_000_000_000; k += k < 3_000_000 ? 1 : 99_991) {
      const ms = k / 1000;
      if (durationText(ms) !== String(ms)) assert.fail(`${k}: ${durationText(ms)} !== ${String(ms)}`);
    }
    let seed = 7;
    for (let i = 0; i < 200_000; i++) {
      seed = (seed * 48271) % 2147483647;
      const ms = Math.round(seed * (seed % 1000)) / 1000; // up to about 2e12 ms
      if (durationText(ms) !== String(ms)) assert.fail(`${ms}: ${durationText(ms)} !== ${String(ms)}`);
    }
  });

  it('durationText falls back to String for anything else', () => {
    for (const ms of [1e-7, 0.0005, 1.2345, -1, -0.001, 1e21, 1e15 + 0.5, Number.NaN, Infinity, -0]) {
      assert.equal(durationText(ms), String(ms), String(ms));
    }
  });

  it('plainJson accepts exactly the text JSON.stringify only quotes, within the cap', () => {
    for (let c = 0; c < 0x10000; c++) {
      const s = `a${String.fromCharCode(c)}b`;
      assert.equal(
        plainJson(s, 10),
        escapeRawControls(JSON.stringify(s)) === `"${s}"` && c < 0x80,
        `U+${c.toString(16)}`,
      );
    }
    assert.equal(plainJson('abc', 3), true);
    assert.equal(plainJson('abcd', 3), false);
    assert.equal(plainJson('', 0), true);
  });
});
