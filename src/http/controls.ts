// Response controls: what a client may ask of the response, on any path.
// One naming scheme: the query parameter `echo_<name>` or the header `X-Echo-<Name>`
// (the query parameter wins when both are given). Every value goes through a bounded
// parser; a bad one is a ControlError, which the app answers with 400.
import { ParseError, clip, parseDuration, parseInteger, parseSize } from '../util/parse.ts';
import { parseHealth, type HealthAction } from '../ops/health.ts';
import { negotiate, parseFormat, type Format } from '../echo/render/negotiate.ts';

export const QUERY_PREFIX = 'echo_';
export const HEADER_PREFIX = 'x-echo-';

export interface StatusChoice {
  code: number;
  weight: number;
}

export interface Controls {
  /** Final status, or a weighted random choice among several. */
  status: StatusChoice[] | null;
  delayMs: number;
  headers: [string, string][];
  /** Generate a body of this many bytes instead of the echo. */
  size: number | null;
  health: HealthAction | null;
}

export interface ControlLimits {
  maxDelayMs: number;
  maxGeneratedSize: number;
  maxResponseHeaders: number;
}

export class ControlError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

/** Raw control values by name (without prefix), each with the name the client used. */
export type ControlInput = Map<string, { source: string; values: string[] }>;

export function addControlInput(input: ControlInput, name: string, source: string, value: string): void {
  const entry = input.get(name);
  if (entry === undefined) input.set(name, { source, values: [value] });
  else entry.values.push(value);
}

const KNOWN = new Set(['status', 'delay', 'header', 'size', 'health', 'format']);

export function parseControls(input: ControlInput, limits: ControlLimits): Controls {
  const controls: Controls = { status: null, delayMs: 0, headers: [], size: null, health: null };
  for (const [name, { source, values }] of input) {
    if (!KNOWN.has(name)) throw new ControlError(`unknown control ${source}; known: ${[...KNOWN].map((k) => QUERY_PREFIX + k).join(', ')}`);
    const first = values[0]!;
    try {
      switch (name) {
        case 'status': controls.status = parseStatus(first); break;
        case 'delay': controls.delayMs = parseDuration(first, limits.maxDelayMs); break;
        case 'size': controls.size = parseSize(first, limits.maxGeneratedSize); break;
        case 'health': controls.health = parseHealth(first); break;
        case 'header':
          if (values.length > limits.maxResponseHeaders) throw new ParseError(`at most ${limits.maxResponseHeaders} headers may be set`);
          controls.headers = values.map(parseHeader);
          break;
        default: break; // format is read by the renderer choice
      }
    } catch (err) {
      if (err instanceof ParseError) throw new ControlError(`invalid ${source}: ${err.message}`);
      throw err;
    }
  }
  return controls;
}

/** Interim codes Node can send before the final response. */
export const INTERIM_CODES = new Set([100, 102, 103]);
const MAX_CHOICES = 20;

/** `503`, or a weighted choice such as `200:3,503:1`. */
export function parseStatus(text: string): StatusChoice[] {
  const parts = text.split(',');
  if (parts.length > MAX_CHOICES) throw new ParseError(`at most ${MAX_CHOICES} choices`);
  return parts.map((part) => {
    const pieces = part.split(':');
    if (pieces.length > 2) throw new ParseError(`"${clip(part)}" is not a code or code:weight`);
    const [codeText = '', weightText] = pieces;
    const code = parseInteger(codeText, 100, 599);
    if (code < 200 && !INTERIM_CODES.has(code)) throw new ParseError(`${code} cannot be sent; of the 1xx codes only 100, 102 and 103 (as interim responses)`);
    const weight = weightText === undefined ? 1 : parseInteger(weightText, 1, 1000);
    return { code, weight };
  });
}

/** Pick a status from weighted choices; `random` returns [0, 1). */
export function pickStatus(choices: readonly StatusChoice[], random: () => number): number {
  if (choices.length === 1) return choices[0]!.code;
  let total = 0;
  for (const c of choices) total += c.weight;
  let r = random() * total;
  for (const c of choices) {
    r -= c.weight;
    if (r < 0) return c.code;
  }
  return choices[choices.length - 1]!.code;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, spaces and obs-text; no control character anywhere (a tab included). */
const SAFE_VALUE = /^[\x20-\x7e\x80-\xff]*$/;

/**
 * Which response headers a client may set, by allowlist: a short list of standard
 * headers that change nothing about how a browser, a cache or another origin treats
 * the response, plus extension headers (`X-…`) except those that browsers, proxies
 * or caches act on. Everything else (CORS, CSP, HSTS, cookies, authentication
 * challenges, redirects, downloads, site data, alternative services, Link
 * preloads and stylesheets, cache controls for browsers, CDNs and surrogates,
 * Expires, Age, Vary, cross-origin policies, framing, framing of the exchange
 * itself) is refused with 400.
 */
export const ALLOWED_HEADERS = new Set([
  'accept-patch', 'accept-post', 'accept-ranges', 'allow', 'content-language', 'deprecation', 'etag',
  'last-modified', 'location', 'retry-after', 'server', 'sunset', 'via', 'warning',
]);
/** Extension headers with an effect in browsers, proxies or servers in front of us. */
export const FORBIDDEN_X_HEADERS = new Set([
  'x-content-type-options', 'x-frame-options', 'x-xss-protection', 'x-dns-prefetch-control',
  'x-permitted-cross-domain-policies', 'x-download-options', 'x-ua-compatible', 'x-request-id',
  'x-sendfile', 'x-lighttpd-send-file', 'x-accel-redirect', 'x-accel-buffering', 'x-accel-expires',
  'x-accel-limit-rate', 'x-accel-charset', 'x-real-ip', 'x-content-security-policy', 'x-webkit-csp',
]);

/**
 * Families of extension headers that proxies and servers in front act on: nginx
 * (X-Accel-*), Envoy/Istio (X-Envoy-*: an immediate-health-check-fail would eject
 * the replica), LiteSpeed, lighttpd and mod_xsendfile, the forwarding headers, and
 * Next.js middleware; and our own controls.
 */
const FORBIDDEN_X_PREFIXES = ['x-accel-', 'x-envoy-', 'x-litespeed-', 'x-lighttpd-', 'x-sendfile', 'x-forwarded-', 'x-middleware-', 'x-echo-'];

export function headerAllowed(lower: string): boolean {
  if (ALLOWED_HEADERS.has(lower)) return true;
  return lower.startsWith('x-') && !FORBIDDEN_X_HEADERS.has(lower) && !FORBIDDEN_X_PREFIXES.some((p) => lower.startsWith(p));
}

/** `Name: value`. A Location must be a path on this server, so no open redirect. */
export function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ParseError(`"${clip(text)}" is not of the form Name: value`);
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  if (!TOKEN.test(name)) throw new ParseError(`"${clip(name)}" is not a valid header name`);
  if (!SAFE_VALUE.test(value) || value.length > 4096) throw new ParseError(`the value of ${clip(name)} has control characters or is longer than 4096`);
  const lower = name.toLowerCase();
  if (!headerAllowed(lower)) {
    throw new ParseError(`${name} cannot be set by a client: only X-… extension headers and ${[...ALLOWED_HEADERS].join(', ')} (see README, "Response controls")`);
  }
  // A path: one slash, then anything but a second slash or a backslash (browsers
  // read `/\evil.com` as `//evil.com`). Control characters are already refused.
  if (lower === 'location' && !/^\/(?![/\\])[^\\]*$/.test(value)) {
    throw new ParseError('Location must be a path on this server, such as /next');
  }
  return [name, value];
}

/** Control values from the query (`echo_*`) and headers (`X-Echo-*`); null when there are none. */
export function controlInput(uri: string, q: number, headers: [string, string][] | null): ControlInput | null {
  let input: ControlInput | null = null;
  if (q >= 0 && uri.includes(QUERY_PREFIX, q)) {
    for (const [k, v] of new URLSearchParams(uri.slice(q + 1))) {
      if (k.startsWith(QUERY_PREFIX)) addControlInput((input ??= new Map() as ControlInput), k.slice(QUERY_PREFIX.length), k, v);
    }
  }
  if (headers !== null) {
    for (const [name, value] of headers) {
      // The query wins: a header only fills a control the query did not set.
      if (input?.get(name)?.source.startsWith(QUERY_PREFIX)) continue;
      addControlInput((input ??= new Map() as ControlInput), name, `X-Echo-${name[0]!.toUpperCase()}${name.slice(1)}`, value);
    }
  }
  return input;
}

/** The rendering: an explicit echo_format / X-Echo-Format, else the Accept header. */
export function pickFormat(input: ControlInput | null, accept: string | undefined, sse: boolean): Format {
  const requested = input?.get('format');
  if (requested === undefined) return negotiate(accept, sse);
  const format = parseFormat(requested.values[0]!);
  if (format === null || (format === 'sse' && !sse)) throw new ControlError(`invalid ${requested.source}: use text, json, html${sse ? ' or sse' : ''}`);
  return format;
}
