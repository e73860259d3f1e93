// A bounded, seeded fuzz test of the whole HTTP surface.
//
// The real server runs as a child process, so a crash shows up as an exit. Random
// requests (methods, paths, query keys and values, header names and values with
// prototype names, unicode, obs-text and control bytes, cookies, echo_* controls,
// Accept values) go to it over raw HTTP/1.1 sockets, pipelined 1-3 per connection,
// and over h2c with several streams per session. Every HTTP/1.1 byte stream is
// parsed strictly; every answer is matched to its request by X-Request-Id.
//
// Replay: every case draws from its own PRNG seeded from (FUZZ_SEED, case number), so
// `FUZZ_SEED=<seed> FUZZ_CASE=<n>` reruns exactly the case a failure names.
// FUZZ_MS sets the time spent sending (default 12 s, capped at 25 s so the whole test
// stays under 30 s); FUZZ_CASES caps the number of cases.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  connect as h2connect,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
} from 'node:http2';
import { connect } from 'node:net';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers.ts';

const SEED = process.env.FUZZ_SEED !== undefined ? Number.parseInt(process.env.FUZZ_SEED, 10) >>> 0 : 0x5eed0008;
const BUDGET_MS = Math.min(Number(process.env.FUZZ_MS ?? '') || 12_000, 25_000);
const MAX_CASES = Number(process.env.FUZZ_CASES ?? '') || 4000;
const ONLY_CASE = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : null;
const WORKERS = 6;
/** How long one connection or session may take after its last write: generous for a busy 2-core CI machine. */
const CASE_TIMEOUT_MS = 5000;
const RSS_LIMIT_MB = 300;
const REPLAY = (n: number) => `seed=${SEED} case=${n} (replay: FUZZ_SEED=${SEED} FUZZ_CASE=${n})`;

// ---------------------------------------------------------------------------
// Randomness: mulberry32, small and good enough to drive a fuzzer reproducibly.

interface Rng {
  float(): number;
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const float = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(float() * n);
  return { float, int, chance: (p) => float() < p, pick: (items) => items[int(items.length)]! };
}

/** Each case has its own stream of numbers, so a case replays alone and in any order. */
const caseRng = (n: number) => makeRng(SEED ^ Math.imul(n + 1, 0x9e3779b1));

// ---------------------------------------------------------------------------
// Generators. HTTP/1.1 requests are built as "byte strings" (one char per byte,
// latin1), so unicode goes out as its UTF-8 bytes and obs-text as single bytes.

const utf8Bytes = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

const PROTO_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
  'isPrototypeOf',
  'toLocaleString',
];
const UNICODE = ['é', 'Ω', '日本語', '€', '😀', '\u200b', 'ﬁ', 'İ'];

function pctEncodeAll(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

function pathSegment(rng: Rng): string {
  if (rng.chance(0.03)) return utf8Bytes(rng.pick(UNICODE)); // raw UTF-8 bytes in the request line: may be refused
  switch (rng.int(11)) {
    case 0:
      return rng.pick(PROTO_NAMES);
    case 1:
      return rng.pick(['..', '.', '%2e%2e', '%2E', '']);
    case 2:
      return pctEncodeAll(rng.pick(UNICODE)); // valid percent-encoded UTF-8
    case 3:
      return rng.pick(['%zz', '%', '%C3%28', '%FF', '%00', '%E2%82']); // invalid escapes or invalid UTF-8
    case 4:
      return 'x'.repeat(1 + rng.int(3000)); // long, well within --max-header-size
    case 5:
      return rng.pick([';a=b', '~user', "!$&'()*+,;=", '@', ':', 'a%2Fb']);
    case 6:
      return rng.pick(['livez', 'readyz']); // ops endpoint names inside a longer path: still echoed
    default:
      return rng.pick(['a', 'echo', 'api', 'v1', 'items', '0', 'Z']);
  }
}

/** Control values the server accepts, and values it must refuse (400, or 403 for the health control). */
const CONTROL_VALUES: Record<string, { good: readonly string[]; bad: readonly string[] }> = {
  status: {
    good: [
      '200',
      '201',
      '204',
      '304',
      '301',
      '404',
      '418',
      '100',
      '102',
      '103',
      '500',
      '503',
      '599',
      '200:3,503:1',
      '201:1,500:1,204:1',
      ' 503 ',
    ],
    bad: ['99', '600', '101', 'abc', '', '200:0', '200:x', '1e3', Array(25).fill('200').join(',')],
  },
  delay: { good: ['0', '5', '20ms', '0.05s', '150'], bad: ['1h', '-1', 'abc', '500ms', '.5'] },
  header: {
    good: [
      'X-Fuzz: a',
      'Cache-Control: max-age=60',
      'Location: /next',
      'X-B: é',
      '__proto__: 1',
      'constructor: x',
      'toString: y',
    ],
    bad: [
      'Set-Cookie: a=b',
      'Location: https://evil.example/',
      'Location: //evil',
      'X-A:\r\nInjected: 1',
      'X-A: a\nb',
      'Content-Length: 5',
      'Transfer-Encoding: chunked',
      'Connection: close',
      'X-C: €',
      'no-colon',
      ': empty-name',
      'X-Long: ' + 'v'.repeat(5000),
    ],
  },
  size: { good: ['0', '1', '100', '1KiB', '10000', '16KiB', '1.5k'], bad: ['1GiB', 'abc', '-3'] },
  format: { good: ['text', 'json', 'html', 'sse', 'JSON'], bad: ['bogus', '', 'xml'] },
  health: { good: [], bad: ['fail', 'ok', 'fail-once', 'bogus'] }, // no --health-control: always 403 (or 400)
  bogus: { good: [], bad: ['1'] }, // an unknown control: 400
};
const CONTROL_NAMES = Object.keys(CONTROL_VALUES);
/** Mostly controls the server accepts, so the echo paths get exercised, not only the refusals. */
const CONTROL_WEIGHTS = [
  'status',
  'status',
  'delay',
  'header',
  'header',
  'size',
  'format',
  'format',
  'health',
  'bogus',
];

function controlValue(rng: Rng, name: string): string {
  const { good, bad } = CONTROL_VALUES[name]!;
  return rng.pick(good.length > 0 && rng.chance(0.75) ? good : bad);
}
const ACCEPT_VALUES = [
  'text/html',
  'application/json',
  'text/plain',
  'application/json;q=0.9, text/plain;q=0.1',
  'text/event-stream',
  'text/*',
  '*/*;q=0',
  'garbage;;;q=x',
  'text/html;q=0.5, text/event-stream;q=0.6',
  '',
  ',,,',
  'application/xhtml+xml',
  'image/*;q=NaN',
  'a/b;q=1e309',
  'text/event-stream;q=0',
];
const COOKIE_VALUES = [
  '__proto__=1; constructor=2',
  'a=b; a=c',
  'toString=x; valueOf=y',
  '=x',
  'noeq',
  '"q"="v"',
  'hasOwnProperty=1',
  `u=${utf8Bytes('日本')}`,
  'a=b;;;c=d',
  '',
];

/** A query value: text, percent-encoded unicode, or odd escapes. */
function queryText(rng: Rng): string {
  switch (rng.int(7)) {
    case 0:
      return rng.pick(PROTO_NAMES);
    case 1:
      return pctEncodeAll(rng.pick(UNICODE));
    case 2:
      return rng.pick(['%zz', '%', '+', '%2B', '%26', '%3D', '=', '%00', '%0D%0A']);
    case 3:
      return 'q'.repeat(rng.int(500));
    case 4:
      return '';
    default:
      return rng.pick(['1', 'a', 'x%20y', 'x+y', 'true', 'null']);
  }
}

function queryPair(rng: Rng): string {
  if (rng.chance(0.35)) {
    const name = rng.pick(CONTROL_WEIGHTS);
    const key = rng.chance(0.1) ? `echo%5F${name}` : `echo_${name}`;
    return `${key}=${encodeURIComponent(controlValue(rng, name))}`;
  }
  const key = rng.chance(0.4) ? rng.pick(PROTO_NAMES) : queryText(rng);
  return rng.chance(0.1) ? key : `${key}=${queryText(rng)}`;
}

/** A request target: origin-form mostly, sometimes absolute-form; never /metrics or /version (they carry no X-Request-Id). */
function target(rng: Rng, method: string): string {
  if (method === 'OPTIONS' && rng.chance(0.2)) return '*';
  const segments = Array.from({ length: 1 + rng.int(4) }, () => pathSegment(rng));
  let path = '/' + segments.join('/');
  if (rng.chance(0.1)) path = '/' + rng.pick(['livez', 'readyz']);
  const pairs = Array.from({ length: rng.int(6) }, () => queryPair(rng));
  const query = pairs.length > 0 || rng.chance(0.05) ? '?' + pairs.join('&') : '';
  return (rng.chance(0.05) ? 'http://fuzz.example' : '') + path + query;
}

const SAFE_METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
const ODD_METHODS = ['FOO', 'M-SEARCH', 'PROPFIND', 'PURGE', 'TRACE', 'get', 'X'.repeat(40), 'QUERY', 'BREW'];

function method(rng: Rng): string {
  return rng.chance(0.1) ? rng.pick(ODD_METHODS) : rng.pick(SAFE_METHODS);
}

const OTHER_HEADER_NAMES = [
  'Accept',
  'Cookie',
  'User-Agent',
  'Forwarded',
  'X-Forwarded-For',
  'X-Real-IP',
  'Accept-Language',
  'Referer',
  'Proxy-Connection',
  'Content-Type',
  'Authorization',
  'X-Custom',
  'x-lower',
  'X-MiXeD-CaSe',
  'Via',
  'Range',
  'If-None-Match',
];

function headerName(rng: Rng): string {
  if (rng.chance(0.04)) return rng.pick([utf8Bytes('X-Ünïcode'), 'X Space', 'X:Colon', 'X\tTab', '', 'X-"Q"']); // not tokens: refused
  switch (rng.int(7)) {
    case 0:
    case 1:
      return rng.pick(PROTO_NAMES);
    case 2:
    case 3:
      return `X-Echo-${rng.pick(CONTROL_WEIGHTS)}`;
    default:
      return rng.pick(OTHER_HEADER_NAMES);
  }
}

/** A header value as bytes: ASCII, UTF-8, obs-text, control bytes (which may make the request malformed). */
function headerValue(rng: Rng, name: string): string {
  const lower = name.toLowerCase();
  if (lower.startsWith('x-echo-')) {
    const control = lower.slice(7);
    if (CONTROL_NAMES.includes(control)) return utf8Bytes(controlValue(rng, control));
  }
  if (lower === 'accept') return rng.pick(ACCEPT_VALUES);
  if (lower === 'cookie') return rng.pick(COOKIE_VALUES);
  if (lower === 'x-forwarded-for' || lower === 'forwarded' || lower === 'x-real-ip')
    return rng.pick(['1.2.3.4', 'for=unknown', '::1, 10.0.0.1', 'junk', 'for="[::1]:80"']);
  // A control byte (CR, LF, NUL included) makes the request malformed: the server must refuse it with 400.
  if (rng.chance(0.04)) return 'a' + String.fromCharCode(rng.pick([0, 1, 8, 10, 11, 13, 27, 127])) + 'b';
  switch (rng.int(7)) {
    case 0:
      return utf8Bytes(rng.pick(UNICODE));
    case 1:
      return String.fromCharCode(0x80 + rng.int(128)) + 'obs' + String.fromCharCode(0x80 + rng.int(128));
    case 2:
      return 'v'.repeat(rng.int(4000));
    case 3:
      return rng.pick(PROTO_NAMES);
    case 4:
      return '';
    default:
      return rng.pick(['1', 'text', ' padded ', '\tTab', 'a, b, c', '"quoted"']);
  }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 requests, and what the answer to each may be.

interface SentRequest {
  id: string;
  /** The answer has no body (HEAD). */
  head: boolean;
  /** The server may refuse it as malformed: 400 from the parser, without X-Request-Id, connection closed. */
  risky: boolean;
  /** Connection: close or HTTP/1.0: the server closes after answering it. */
  close: boolean;
  /** 5xx codes this request asked for through echo_status / X-Echo-Status. */
  allowed5xx: Set<number>;
  bytes: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
// eslint-disable-next-line no-control-regex -- exactly the bytes a header value may not carry
const CONTROL_BYTE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** 5xx codes the request may legitimately get back: every number >= 500 in any status control it carries. */
function allowed5xx(targetText: string, headers: [string, string][]): Set<number> {
  const values: string[] = [];
  const q = targetText.indexOf('?');
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(targetText.slice(q + 1))) if (k === 'echo_status') values.push(v);
  }
  for (const [name, value] of headers) if (name.toLowerCase() === 'x-echo-status') values.push(value);
  const codes = new Set<number>();
  for (const v of values) for (const m of v.matchAll(/\d+/g)) if (Number(m[0]) >= 500) codes.add(Number(m[0]));
  return codes;
}

/** Body and framing headers: none, Content-Length, or chunked (sometimes with an extension). */
function body(rng: Rng, verb: string): { headers: [string, string][]; data: string } {
  const wantsBody = ['POST', 'PUT', 'PATCH'].includes(verb) ? rng.chance(0.8) : rng.chance(0.1);
  if (!wantsBody) return { headers: [], data: '' };
  const payload = rng.chance(0.5)
    ? utf8Bytes(rng.pick(UNICODE) + 'body'.repeat(rng.int(300)))
    : Array.from({ length: rng.int(2000) }, () => String.fromCharCode(rng.int(256))).join('');
  const extra: [string, string][] = rng.chance(0.1) ? [['Expect', '100-continue']] : [];
  if (rng.chance(0.6)) return { headers: [['Content-Length', String(payload.length)], ...extra], data: payload };
  let chunked = '';
  for (let rest = payload; rest.length > 0;) {
    const n = Math.min(rest.length, 1 + rng.int(800));
    chunked += `${n.toString(16)}${rng.chance(0.1) ? ';ext=1' : ''}\r\n${rest.slice(0, n)}\r\n`;
    rest = rest.slice(n);
  }
  return { headers: [['Transfer-Encoding', 'chunked'], ...extra], data: chunked + '0\r\n\r\n' };
}

function request(rng: Rng, id: string): SentRequest {
  let verb = method(rng);
  const targetText = target(rng, verb);
  const fuzzed = Array.from({ length: rng.int(8) }, (): [string, string] => {
    const name = headerName(rng);
    return [name, headerValue(rng, name)];
  });
  const framing = body(rng, verb);
  const http10 = rng.chance(0.05) && !framing.headers.some(([n]) => n === 'Transfer-Encoding');
  const close = http10 || rng.chance(0.15);
  const risky =
    !['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].includes(verb) ||
    !VISIBLE_ASCII.test(targetText) ||
    fuzzed.some(([n, v]) => !TOKEN.test(n) || CONTROL_BYTE.test(v));
  // A HEAD answer has no body, but the parser's 400 for a refused request has one: keep HEAD to requests that are surely parsed.
  if (risky && verb === 'HEAD') verb = 'GET';
  const headers: [string, string][] = [['Host', 'fuzz.example'], ['X-Request-Id', id], ...fuzzed, ...framing.headers];
  if (close && !http10) headers.push(['Connection', 'close']);
  const head = `${verb} ${targetText} HTTP/1.${http10 ? 0 : 1}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return {
    id,
    head: verb === 'HEAD',
    risky,
    close,
    allowed5xx: allowed5xx(targetText, headers),
    bytes: head + framing.data,
  };
}

/** Requests the server must refuse (or, for an oversized body, answer 413); always the last answered one. */
function malformed(rng: Rng, id: string): SentRequest {
  const h = `Host: fuzz.example\r\nX-Request-Id: ${id}\r\n`;
  const bytes = rng.pick([
    'HELLO\r\n\r\n',
    `G@T / HTTP/1.1\r\n${h}\r\n`,
    `GET / HTTP/9.9\r\n${h}\r\n`,
    `GET / HTTP/1.1\r\n${h}Broken\r\n\r\n`,
    `GET / HTTP/1.1\r\n${h}X-Space : a\r\n\r\n`,
    `GET / HTTP/1.1\r\n${h}X-Nul: a\0b\r\n\r\n`,
    `GET / HTTP/1.1\r\n${h}X-Fold: a\r\n folded\r\n\r\n`,
    `GET /a b HTTP/1.1\r\n${h}\r\n`,
    `GET / HTTP/1.1\r\nX-Request-Id: ${id}\r\n\r\n`, // no Host
    `POST / HTTP/1.1\r\n${h}Content-Length: abc\r\n\r\n`,
    `POST / HTTP/1.1\r\n${h}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
    `POST / HTTP/1.1\r\n${h}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc`,
    `POST / HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    `POST / HTTP/1.1\r\n${h}Content-Length: 999999999\r\n\r\nabc`, // over --max-body-size: 413
    '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', // a TLS ClientHello on the plain port
  ]);
  return { id, head: false, risky: true, close: true, allowed5xx: new Set(), bytes };
}

// ---------------------------------------------------------------------------
// A strict parser for a stream of HTTP/1.1 responses.

interface FinalResponse {
  status: number;
  requestId: string | undefined;
  close: boolean;
  /** The response head, for failure messages. */
  head: string;
}

interface ParsedStream {
  finals: FinalResponse[];
  interims: number;
  /** Everything received so far is whole responses. */
  clean: boolean;
  error: string | null;
}

const STATUS_LINE = /^HTTP\/1\.1 ([1-5][0-9]{2}) [^\r\n]*$/;
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n\0]*)$/;

/** Reads the chunked body starting at `pos`; returns its end, null if incomplete, or an error. */
function chunkedEnd(buf: Buffer, pos: number): number | null | string {
  for (;;) {
    const eol = buf.indexOf('\r\n', pos, 'latin1');
    if (eol < 0)
      return buf.length - pos > 20
        ? `unterminated chunk-size line ${JSON.stringify(buf.toString('latin1', pos, pos + 40))}`
        : null;
    const line = buf.toString('latin1', pos, eol);
    if (!/^[0-9a-fA-F]{1,8}$/.test(line)) return `bad chunk-size line ${JSON.stringify(line.slice(0, 60))}`;
    const size = Number.parseInt(line, 16);
    pos = eol + 2;
    if (size === 0) {
      // Trailers (none expected), then the final CRLF.
      for (;;) {
        const end = buf.indexOf('\r\n', pos, 'latin1');
        if (end < 0) return null;
        if (end === pos) return end + 2;
        if (!HEADER_LINE.test(buf.toString('latin1', pos, end)))
          return `bad trailer line ${JSON.stringify(buf.toString('latin1', pos, Math.min(end, pos + 60)))}`;
        pos = end + 2;
      }
    }
    if (buf.length < pos + size + 2) return null;
    if (buf.toString('latin1', pos + size, pos + size + 2) !== '\r\n')
      return `chunk data not followed by CRLF: ${JSON.stringify(buf.toString('latin1', pos + size, pos + size + 40))}`;
    pos += size + 2;
  }
}

/**
 * Parses `buf` as a sequence of responses to `requests`, in order: 1xx interim responses,
 * then one final response per request, framed by HEAD/204/304 (no body), chunked,
 * Content-Length, or (last, at end of stream) the close of the connection.
 */
function parseResponses(buf: Buffer, requests: readonly SentRequest[], eof: boolean): ParsedStream {
  const out: ParsedStream = { finals: [], interims: 0, clean: true, error: null };
  let pos = 0;
  const fail = (msg: string) => ({ ...out, clean: false, error: `${msg} (at byte ${pos} of ${buf.length})` });
  while (pos < buf.length) {
    const k = out.finals.length;
    const previous = out.finals[k - 1];
    if (previous?.close)
      return fail(
        `bytes after a response with Connection: close: ${JSON.stringify(buf.toString('latin1', pos, pos + 80))}`,
      );
    if (k >= requests.length)
      return fail(
        `bytes after the answer to the last request: ${JSON.stringify(buf.toString('latin1', pos, pos + 80))}`,
      );
    const headEnd = buf.indexOf('\r\n\r\n', pos, 'latin1');
    if (headEnd < 0) {
      if (eof)
        return fail(`stream ends inside a response head: ${JSON.stringify(buf.toString('latin1', pos, pos + 80))}`);
      if (!buf.toString('latin1', pos, pos + 9).startsWith('HTTP/1.1 '.slice(0, buf.length - pos)))
        return fail(`not a status line: ${JSON.stringify(buf.toString('latin1', pos, pos + 80))}`);
      return { ...out, clean: false };
    }
    const head = buf.toString('latin1', pos, headEnd);
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = STATUS_LINE.exec(statusLine);
    if (m === null) return fail(`not a status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const status = Number(m[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const hm = HEADER_LINE.exec(line);
      if (hm === null)
        return fail(`bad header line ${JSON.stringify(line.slice(0, 80))} in ${JSON.stringify(statusLine)}`);
      const name = hm[1]!.toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), hm[2]!]);
    }
    pos = headEnd + 4;
    if (status < 200) {
      if (status === 101) return fail('101 Switching Protocols without an upgrade request');
      out.interims++;
      continue;
    }
    const lengths = headers.get('content-length');
    const te = headers.get('transfer-encoding');
    if (lengths !== undefined && te !== undefined)
      return fail(`both Content-Length and Transfer-Encoding in ${JSON.stringify(statusLine)}`);
    if (lengths !== undefined && (lengths.length > 1 || !/^[0-9]+$/.test(lengths[0]!)))
      return fail(`bad Content-Length ${JSON.stringify(lengths)}`);
    const close = (headers.get('connection') ?? []).some((v) => /(^|,)\s*close\s*(,|$)/i.test(v));
    const final: FinalResponse = {
      status,
      requestId: headers.get('x-request-id')?.[0],
      close,
      head: head.slice(0, 300),
    };
    if (requests[k]!.head || status === 204 || status === 304) {
      // no body, whatever the headers announce
    } else if (te !== undefined) {
      if (te.length > 1 || te[0]!.toLowerCase() !== 'chunked')
        return fail(`unexpected Transfer-Encoding ${JSON.stringify(te)}`);
      const end = chunkedEnd(buf, pos);
      if (typeof end === 'string') return fail(`${end} in the body of ${JSON.stringify(statusLine)} (request ${k})`);
      if (end === null) {
        if (eof) return fail(`stream ends inside the chunked body of ${JSON.stringify(statusLine)}`);
        return { ...out, clean: false };
      }
      pos = end;
    } else if (lengths !== undefined) {
      const end = pos + Number(lengths[0]);
      if (buf.length < end) {
        if (eof)
          return fail(
            `stream ends ${end - buf.length} bytes short of the Content-Length of ${JSON.stringify(statusLine)}`,
          );
        return { ...out, clean: false };
      }
      pos = end;
    } else {
      // Delimited by the close of the connection: only valid when the server says it closes.
      if (!close)
        return fail(`response without Content-Length, chunked or Connection: close: ${JSON.stringify(statusLine)}`);
      if (!eof) return { ...out, clean: false };
      pos = buf.length;
    }
    out.finals.push(final);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Outcomes, gathered across cases.

interface Stats {
  cases: number;
  h1Connections: number;
  h1Requests: number;
  h2Sessions: number;
  h2Streams: number;
  byClass: Record<string, number>;
  interims: number;
  refusedMalformed: number;
  unansweredMalformed: number;
  /** HTTP/1.1 connections the server closed (legitimately) with a TCP reset. */
  resetAfterClose: number;
  /** Streams node:http2 would not send, by error code. */
  h2ClientRefused: Record<string, number>;
  h2Resets: string[];
}

const stats: Stats = {
  cases: 0,
  h1Connections: 0,
  h1Requests: 0,
  h2Sessions: 0,
  h2Streams: 0,
  byClass: {},
  interims: 0,
  refusedMalformed: 0,
  unansweredMalformed: 0,
  resetAfterClose: 0,
  h2ClientRefused: {},
  h2Resets: [],
};

/** Failures by kind, with the first few examples of each. */
const failures = new Map<string, { count: number; examples: string[] }>();

/** Text for a failure message: runs of one character shortened to `x{3000}`, and clipped, unless replaying one case. */
function show(text: string, max = 600): string {
  if (ONLY_CASE !== null) return JSON.stringify(text);
  const short = text.replace(/(.)\1{19,}/gs, (run, c: string) => `${c}{${run.length}}`);
  return JSON.stringify(short.length > max ? short.slice(0, max) + '…' : short);
}

function fail(kind: string, caseNo: number, detail: string, sent?: string): void {
  const entry = failures.get(kind) ?? { count: 0, examples: [] };
  entry.count++;
  if (entry.examples.length < 2)
    entry.examples.push(`${REPLAY(caseNo)}: ${detail}${sent === undefined ? '' : `\n      sent: ${show(sent)}`}`);
  failures.set(kind, entry);
}

function countStatus(status: number, allowed: Set<number>): void {
  const cls =
    status >= 500 ? (allowed.has(status) ? '5xx requested' : '5xx UNREQUESTED') : `${Math.floor(status / 100)}xx`;
  stats.byClass[cls] = (stats.byClass[cls] ?? 0) + 1;
}

// ---------------------------------------------------------------------------
// One HTTP/1.1 connection: 1-3 pipelined requests, answers checked strictly.

function h1Requests(rng: Rng, caseNo: number): SentRequest[] {
  const n = 1 + rng.int(3);
  return Array.from({ length: n }, (_, i) => {
    const id = `fz-${caseNo}-${i}`;
    return rng.chance(i === 0 ? 0.05 : 0.15) ? malformed(rng, id) : request(rng, id);
  });
}

/** Sends the bytes (sometimes in fragments) and collects the answer until complete, closed, or timed out. */
function exchange(
  port: number,
  payload: Buffer,
  fragments: number,
  done: (buf: Buffer) => boolean,
): Promise<{ buf: Buffer; eof: boolean; timedOut: boolean; reset: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let settled = false;
    let reset = false;
    const finish = (eof: boolean, timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ buf: Buffer.concat(chunks), eof, timedOut, reset });
    };
    let timer = setTimeout(() => finish(false, true), CASE_TIMEOUT_MS);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (done(Buffer.concat(chunks))) finish(false, false);
    });
    socket.on('close', () => finish(true, false));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      reset ||= err.code === 'ECONNRESET';
    }); // then 'close'
    // Fragments cross the server's parser at odd places: inside the method, a header, a chunk.
    const size = Math.ceil(payload.length / fragments);
    const writeFrom = (offset: number) => {
      if (settled || offset >= payload.length) return;
      socket.write(payload.subarray(offset, offset + size));
      clearTimeout(timer);
      timer = setTimeout(() => finish(false, true), CASE_TIMEOUT_MS);
      setTimeout(() => writeFrom(offset + size), 2);
    };
    socket.once('connect', () => writeFrom(0));
  });
}

/** How many of the requests must be answered: up to the first that closes the connection. */
function mustAnswer(requests: readonly SentRequest[]): number {
  const i = requests.findIndex((r) => r.close);
  return i < 0 ? requests.length : i + 1;
}

async function h1Case(port: number, rng: Rng, caseNo: number): Promise<void> {
  const requests = h1Requests(rng, caseNo);
  const sent = requests.map((r) => r.bytes).join('');
  const expected = mustAnswer(requests);
  // Bytes arriving after the server closed make its kernel answer with a TCP reset, which can discard
  // answers the client has not read yet: so only connections the server has no reason to close are fragmented.
  const mayClose = requests.some((r) => r.close || r.risky);
  const fragments = !mayClose && rng.chance(0.3) ? 2 + rng.int(4) : 1;
  stats.h1Connections++;
  stats.h1Requests += requests.length;
  // Done early only when every expected answer is in and none asked to close (then the close itself is awaited,
  // so bytes the server sends after a Connection: close answer are seen).
  const { buf, eof, timedOut, reset } = await exchange(port, Buffer.from(sent, 'latin1'), fragments, (b) => {
    const p = parseResponses(b, requests, false);
    return p.error !== null || (p.clean && p.finals.length >= expected && !p.finals.some((f) => f.close));
  });
  const parsed = parseResponses(buf, requests, eof);
  stats.interims += parsed.interims;
  if (reset && mayClose && (parsed.error === null || parsed.error.startsWith('stream ends'))) {
    // A reset after a legitimate close may have eaten the tail of the answers: judge only what was whole.
    stats.resetAfterClose++;
    checkAnswers(requests, parsed.finals, caseNo, sent);
    return;
  }
  if (parsed.error !== null) {
    fail(
      parsed.error.startsWith('bytes after a response with Connection: close')
        ? 'HTTP/1.1: bytes after a Connection: close answer'
        : 'HTTP/1.1: corrupted framing',
      caseNo,
      `${parsed.error}\n      received: ${show(buf.toString('latin1'), 900)}`,
      sent,
    );
  }
  checkAnswers(requests, parsed.finals, caseNo, sent);
  checkUnanswered(requests, parsed, eof, timedOut, caseNo, sent);
}

/** Each answer belongs to its request (same X-Request-Id) and is no unrequested 5xx. */
function checkAnswers(
  requests: readonly SentRequest[],
  finals: readonly FinalResponse[],
  caseNo: number,
  sent: string,
): void {
  finals.forEach((f, k) => {
    const req = requests[k]!;
    countStatus(f.status, req.allowed5xx);
    if (f.status >= 500 && !req.allowed5xx.has(f.status)) {
      fail(
        `HTTP/1.1: unrequested ${f.status}`,
        caseNo,
        `request ${k} got ${JSON.stringify(f.head.split('\r\n')[0])}`,
        req.bytes,
      );
    }
    if (f.requestId === req.id) return;
    if (req.risky && f.requestId === undefined && f.status === 400 && f.close) {
      stats.refusedMalformed++;
      return;
    }
    fail(
      `HTTP/1.1: answer does not belong to its request${overtakenBy(requests, k, f)}`,
      caseNo,
      `answer ${k} carries X-Request-Id ${JSON.stringify(f.requestId)}, request ${k} was ${req.id}: ${show(f.head)}`,
      sent,
    );
  });
}

/**
 * Names the likely cause when request k's answer is the parser's bare 400 (no X-Request-Id): that 400
 * was for a later request (malformed, or sent after a Connection: close) and went out while k's answer
 * was still pending.
 */
function overtakenBy(requests: readonly SentRequest[], k: number, f: FinalResponse): string {
  if (f.requestId !== undefined || f.status !== 400 || k + 1 >= requests.length) return '';
  if (requests.slice(k, -1).some((r) => r.close))
    return ' (a 400 for a request pipelined after Connection: close/HTTP/1.0 replaced the pending answer)';
  if (requests.slice(k + 1).some((r) => r.risky))
    return ' (the 400 for a later malformed request replaced the pending answer)';
  return '';
}

/** Fewer answers than requests is fine after a close; otherwise it is a hang or a dropped request. */
function checkUnanswered(
  requests: readonly SentRequest[],
  parsed: ParsedStream,
  eof: boolean,
  timedOut: boolean,
  caseNo: number,
  sent: string,
): void {
  const { finals } = parsed;
  const last = finals[finals.length - 1];
  if (parsed.error !== null) return; // already reported; what follows corrupted framing means nothing
  if (last?.close) {
    if (!eof)
      fail(
        'HTTP/1.1: connection left open after Connection: close',
        caseNo,
        `${finals.length} answers, no close within ${CASE_TIMEOUT_MS} ms`,
        sent,
      );
    return;
  }
  const next = requests[finals.length];
  if (next === undefined || finals.length >= mustAnswer(requests)) return;
  if (next.risky) {
    stats.unansweredMalformed++;
    return;
  }
  fail(
    timedOut ? 'HTTP/1.1: no answer in time' : 'HTTP/1.1: connection closed before the answer',
    caseNo,
    `request ${finals.length} (${next.id}) unanswered; answers received: ${JSON.stringify(finals.map((f) => f.head.split('\r\n')[0]))}`,
    sent,
  );
}

// ---------------------------------------------------------------------------
// One HTTP/2 session (h2c, prior knowledge): several streams at once.

const H2_METHODS = ['GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'FOO', 'M-SEARCH'];

/** Header names and values as JS strings: node:http2 encodes them, and refuses some (counted, skipped). */
function h2Headers(rng: Rng, id: string): { headers: Record<string, string>; pairs: [string, string][] } {
  const headers = Object.create(null) as Record<string, string>; // no prototype: `__proto__` is an ordinary key
  const pairs: [string, string][] = [];
  for (let i = rng.int(8); i > 0; i--) {
    const name = headerName(rng).toLowerCase();
    const value = rng.chance(0.3) ? rng.pick(UNICODE) : Buffer.from(headerValue(rng, name), 'latin1').toString('utf8');
    headers[name] = value;
    pairs.push([name, value]);
  }
  headers[':method'] = rng.pick(H2_METHODS);
  headers[':path'] = target(rng, headers[':method']).replace(/^http:\/\/fuzz\.example/, '');
  headers['x-request-id'] = id;
  return { headers, pairs };
}

interface StreamOutcome {
  status: number | null;
  requestId: string | undefined;
  ended: boolean;
  rstCode: number | null;
  error: string | null;
}

function runStream(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  data: string | null,
): Promise<StreamOutcome> | null {
  let stream: ClientHttp2Stream;
  try {
    stream = session.request(headers, { endStream: data === null });
  } catch (err) {
    clientRefused((err as NodeJS.ErrnoException).code);
    return null; // node:http2 refused the headers on the client side
  }
  return new Promise((resolve) => {
    const out: StreamOutcome = { status: null, requestId: undefined, ended: false, rstCode: null, error: null };
    stream.on('response', (h: IncomingHttpHeaders) => {
      out.status = Number(h[':status']);
      out.requestId = h['x-request-id'] as string | undefined;
    });
    stream.on('data', () => {});
    stream.on('end', () => {
      out.ended = true;
    });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      out.error = `${err.code ?? ''} ${err.message}`;
    });
    stream.on('close', () => {
      out.rstCode = stream.rstCode ?? null;
      resolve(out);
    });
    if (data !== null) stream.end(Buffer.from(data, 'latin1'));
  });
}

async function h2Case(url: string, rng: Rng, caseNo: number): Promise<void> {
  stats.h2Sessions++;
  const session = h2connect(url);
  let sessionError: string | null = null;
  session.on('error', (err: NodeJS.ErrnoException) => {
    sessionError = `${err.code ?? ''} ${err.message}`;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    session.destroy();
  }, CASE_TIMEOUT_MS);
  const runs: Promise<void>[] = [];
  for (let i = 1 + rng.int(5); i > 0; i--) {
    const id = `fz-${caseNo}-h2-${i}`;
    const { headers, pairs } = h2Headers(rng, id);
    const data =
      ['POST', 'PUT', 'PATCH'].includes(headers[':method']!) && rng.chance(0.7) ? 'x'.repeat(rng.int(3000)) : null;
    const sent = JSON.stringify(headers);
    const allowed = allowed5xx(headers[':path']!, pairs);
    const pending = runStream(session, headers, data);
    if (pending === null) continue;
    stats.h2Streams++;
    runs.push(pending.then((o) => checkStream(o, allowed, id, caseNo, sent, timedOut)));
  }
  await Promise.all(runs);
  clearTimeout(timer);
  session.close();
  if (sessionError !== null) fail('HTTP/2: session error', caseNo, sessionError);
}

function clientRefused(code: string | undefined): void {
  stats.h2ClientRefused[code ?? '?'] = (stats.h2ClientRefused[code ?? '?'] ?? 0) + 1;
}

function checkStream(
  o: StreamOutcome,
  allowed: Set<number>,
  id: string,
  caseNo: number,
  sent: string,
  timedOut: boolean,
): void {
  if (o.status !== null) {
    countStatus(o.status, allowed);
    if (o.status >= 500 && !allowed.has(o.status))
      fail(`HTTP/2: unrequested ${o.status}`, caseNo, `stream ${id} got ${o.status}`, sent);
    if (o.requestId !== id)
      fail(
        'HTTP/2: answer does not belong to its request',
        caseNo,
        `stream ${id} answered with X-Request-Id ${o.requestId}`,
        sent,
      );
  }
  if (o.ended && o.rstCode === 0) return;
  if (timedOut) {
    fail(
      'HTTP/2: no answer in time',
      caseNo,
      `stream ${id}: status ${o.status}, not finished within ${CASE_TIMEOUT_MS} ms`,
      sent,
    );
    return;
  }
  if (o.error !== null && /ERR_HTTP2_INVALID|ERR_INVALID_/.test(o.error)) {
    clientRefused(o.error.split(' ')[0]); // refused by node:http2 itself before it went out
    return;
  }
  if (o.status !== null && o.rstCode !== null && o.rstCode !== 0) {
    // The client sent nothing wrong enough to be answered at all: a reset now cuts a response short.
    fail(
      'HTTP/2: stream reset after its answer began',
      caseNo,
      `stream ${id}: status ${o.status}, rst ${o.rstCode} (${o.error})`,
      sent,
    );
    return;
  }
  if (o.rstCode !== null && o.rstCode !== 0) {
    // Refused by the server's HTTP/2 layer before any answer: a protocol violation (space or raw bytes in :path, NUL/CR/LF in a value).
    if (stats.h2Resets.length < 10)
      stats.h2Resets.push(
        `${REPLAY(caseNo)} stream ${id}: rst ${o.rstCode} after status ${o.status} (${o.error}) ${show(sent, 300)}`,
      );
    else stats.h2Resets.push('');
    return;
  }
  fail(
    'HTTP/2: stream did not finish',
    caseNo,
    `stream ${id}: status ${o.status}, ended ${o.ended}, error ${o.error}`,
    sent,
  );
}

// ---------------------------------------------------------------------------
// The server under test, as a child process.

interface Child {
  proc: ChildProcessByStdio<null, Readable, Readable>;
  url: string;
  port: number;
  /** `request failed` log lines: the server's own account of its 500s. */
  errors: string[];
  stderr: string;
  exit: { code: number | null; signal: string | null } | null;
}

async function startChild(): Promise<Child> {
  const main = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
  const proc = spawn(
    process.execPath,
    [
      main,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--no-access-log',
      '--max-delay',
      '200ms',
      '--max-generated-size',
      '16KiB',
      '--max-body-size',
      '64KiB',
      '--sse-count',
      '1',
      '--sse-interval',
      '10ms',
      '--headers-timeout',
      '3s',
      '--request-timeout',
      '4s',
      '--drain-timeout',
      '3s',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const child: Child = { proc, url: '', port: 0, errors: [], stderr: '', exit: null };
  let pending = '';
  // Read stdout all the time, so the pipe never fills and blocks the server.
  proc.stdout.on('data', (c: Buffer) => {
    pending += c.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) noteLogLine(child, line);
  });
  proc.stderr.on('data', (c: Buffer) => {
    child.stderr = (child.stderr + c.toString('utf8')).slice(-4000);
  });
  proc.on('exit', (code, signal) => {
    child.exit = { code, signal };
  });
  await waitFor(() => child.url !== '' || child.exit !== null, 20_000);
  if (child.url === '') throw new Error(`the server did not start: ${JSON.stringify(child.exit)} ${child.stderr}`);
  child.port = Number(new URL(child.url).port);
  return child;
}

function noteLogLine(child: Child, line: string): void {
  let entry: { msg?: string; listeners?: string[]; err?: unknown; uri?: string };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  if (entry.msg === 'echo-server started') child.url = entry.listeners![0]!;
  if (entry.msg === 'request failed' && child.errors.length < 200)
    child.errors.push(`${String(entry.err)} (uri ${show(entry.uri ?? '', 200)})`);
}

function rssMegabytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) / 1024;
  } catch {
    return null; // no /proc (not Linux)
  }
}

// ---------------------------------------------------------------------------

describe(`fuzz: the whole HTTP surface (FUZZ_SEED=${SEED})`, () => {
  let child: Child;
  before(async () => {
    child = await startChild();
  });
  after(() => {
    if (child?.exit === null) child.proc.kill('SIGKILL');
  });

  it('survives random HTTP/1.1 and HTTP/2 traffic: no unrequested 5xx, no corrupted framing, every answer to its request', async (t) => {
    const started = Date.now();
    const deadline = started + BUDGET_MS;
    let next = ONLY_CASE ?? 0;
    const last = ONLY_CASE ?? MAX_CASES - 1;
    const worker = async () => {
      while (next <= last && Date.now() < deadline && child.exit === null) {
        const caseNo = next++;
        const rng = caseRng(caseNo);
        stats.cases++;
        if (rng.chance(0.7)) await h1Case(child.port, rng, caseNo);
        else await h2Case(child.url, rng, caseNo);
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    const summary = {
      seed: SEED,
      ms: Date.now() - started,
      ...stats,
      h2Resets: stats.h2Resets.length,
      h2ResetSamples: stats.h2Resets.filter((s) => s !== '').slice(0, 5),
      serverErrors: [...new Set(child.errors)].slice(0, 10),
    };
    t.diagnostic(`fuzz summary: ${JSON.stringify(summary, null, 1)}`);
    assert.equal(
      child.exit,
      null,
      `the server exited during the fuzz run (${REPLAY(next - 1)}): ${JSON.stringify(child.exit)} ${child.stderr}`,
    );
    const report = [...failures]
      .map(([kind, { count, examples }]) => `  ${kind}: ${count}×\n    ${examples.join('\n    ')}`)
      .join('\n');
    const serverSays =
      summary.serverErrors.length > 0 ? `\n  the server logged: ${summary.serverErrors.join('; ')}` : '';
    assert.equal(failures.size, 0, `fuzz failures with FUZZ_SEED=${SEED}:\n${report}${serverSays}`);
  });

  it('is still alive afterwards: /livez answers 200, RSS is bounded, SIGTERM exits 0', async (t) => {
    assert.equal(child.exit, null, `the server exited: ${JSON.stringify(child.exit)} ${child.stderr}`);
    const live = await fetch(`${child.url}/livez`);
    assert.equal(live.status, 200, `/livez after the fuzz run (seed ${SEED})`);
    await live.text();
    const rss = rssMegabytes(child.proc.pid!);
    t.diagnostic(`server RSS after the fuzz run: ${rss === null ? 'unknown' : `${rss.toFixed(1)} MB`}`);
    if (rss !== null)
      assert.ok(
        rss < RSS_LIMIT_MB,
        `server RSS ${rss.toFixed(1)} MB is over ${RSS_LIMIT_MB} MB after the fuzz run (seed ${SEED})`,
      );
    child.proc.kill('SIGTERM');
    const [code] = (await once(child.proc, 'exit')) as [number | null];
    assert.equal(code, 0, `exit status after SIGTERM (seed ${SEED}): ${child.stderr}`);
  });
});
