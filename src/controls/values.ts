// The values of the two controls with a grammar of their own: echo_status (a code or
// weighted codes) and echo_header (a response header, by allowlist). Each parser
// throws ParseError; controls.ts names the control in the message.
import { ParseError, clip, parseInteger } from '../util/parse.ts';

export interface StatusChoice {
  code: number;
  weight: number;
}

/** Interim codes Node can send before the final response. */
export const INTERIM_CODES = new Set([100, 102, 103]);
/** The codes echo_status may name; the controls table shows the same bound. */
export const STATUS_CODES = { min: 100, max: 599 } as const;
export const MAX_STATUS_CHOICES = 20;
export const MAX_STATUS_WEIGHT = 1000;

/** `503`, or a weighted choice such as `200:3,503:1`. */
export function parseStatus(text: string): StatusChoice[] {
  return parseWeightedCodes(text, (codeText) => {
    const code = parseInteger(codeText, STATUS_CODES.min, STATUS_CODES.max);
    if (code < 200 && !INTERIM_CODES.has(code))
      throw new ParseError(`${code} cannot be sent; of the 1xx codes only 100, 102 and 103 (as interim responses)`);
    return code;
  });
}

/**
 * `code`, or weighted choices `code:weight,...` (at most MAX_STATUS_CHOICES, weights
 * 1 to MAX_STATUS_WEIGHT), each code read by `parseCode`; `normalize` applies to
 * every piece first. HTTP statuses and gRPC codes share it.
 */
export function parseWeightedCodes(
  text: string,
  parseCode: (text: string) => number,
  normalize: (text: string) => string = (t) => t,
): StatusChoice[] {
  const parts = text.split(',');
  if (parts.length > MAX_STATUS_CHOICES) throw new ParseError(`at most ${MAX_STATUS_CHOICES} choices`);
  return parts.map((part) => {
    const pieces = part.split(':');
    if (pieces.length > 2) throw new ParseError(`"${clip(part)}" is not a code or code:weight`);
    const [codeText = '', weightText] = pieces;
    const code = parseCode(normalize(codeText));
    const weight = weightText === undefined ? 1 : parseInteger(normalize(weightText), 1, MAX_STATUS_WEIGHT);
    return { code, weight };
  });
}

/** One value of a distribution (echo_delay, echo_size): picked by weight, then spread by up to `jitter` either way. */
export interface ValueChoice {
  value: number;
  jitter: number;
  weight: number;
}

/**
 * `value`, or weighted values `value:weight,...` (the same bounds as the status
 * choices), each read by `parseValue`; with `jitter`, a value may be `100ms~20ms`:
 * uniformly within 20 ms either side. The spread must stay within 0 and `max`, so
 * a picked value never needs clamping.
 */
export function parseWeightedValues(
  text: string,
  parseValue: (text: string) => number,
  max: number,
  jitter: boolean,
): ValueChoice[] {
  const parts = text.split(',');
  if (parts.length > MAX_STATUS_CHOICES) throw new ParseError(`at most ${MAX_STATUS_CHOICES} choices`);
  return parts.map((part) => {
    const pieces = part.split(':');
    if (pieces.length > 2) throw new ParseError(`"${clip(part)}" is not a value or value:weight`);
    const [valueText = '', weightText] = pieces;
    const spread = valueText.split('~');
    if (spread.length > 2 || (spread.length === 2 && !jitter))
      throw new ParseError(`"${clip(valueText)}" is not a single value`);
    const value = parseValue(spread[0]!);
    const j = spread.length === 2 ? parseValue(spread[1]!) : 0;
    if (j > value) throw new ParseError(`the jitter of ${clip(valueText)} is larger than its value`);
    if (value + j > max) throw new ParseError(`${clip(valueText)} may exceed the maximum`);
    const weight = weightText === undefined ? 1 : parseInteger(weightText, 1, MAX_STATUS_WEIGHT);
    return { value, jitter: j, weight };
  });
}

/** Pick a value from a distribution; `random` returns [0, 1). Whole units (ms, bytes). */
export function pickValue(choices: readonly ValueChoice[], random: () => number): number {
  let chosen = choices[choices.length - 1]!;
  if (choices.length > 1) {
    let total = 0;
    for (const c of choices) total += c.weight;
    let r = random() * total;
    for (const c of choices) {
      r -= c.weight;
      if (r < 0) {
        chosen = c;
        break;
      }
    }
  }
  if (chosen.jitter === 0) return chosen.value;
  return Math.round(chosen.value - chosen.jitter + random() * 2 * chosen.jitter);
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
  'accept-patch',
  'accept-post',
  'accept-ranges',
  'allow',
  'content-language',
  'deprecation',
  'etag',
  'last-modified',
  'location',
  'retry-after',
  'server',
  'sunset',
  'via',
  'warning',
]);
/** Extension headers with an effect in browsers, proxies or servers in front of us. */
export const FORBIDDEN_X_HEADERS = new Set([
  'x-content-type-options',
  'x-frame-options',
  'x-xss-protection',
  'x-dns-prefetch-control',
  'x-permitted-cross-domain-policies',
  'x-download-options',
  'x-ua-compatible',
  'x-request-id',
  'x-sendfile',
  'x-lighttpd-send-file',
  'x-accel-redirect',
  'x-accel-buffering',
  'x-accel-expires',
  'x-accel-limit-rate',
  'x-accel-charset',
  'x-real-ip',
  'x-content-security-policy',
  'x-webkit-csp',
]);

/**
 * Families of extension headers that proxies and servers in front act on: nginx
 * (X-Accel-*), Envoy/Istio (X-Envoy-*: an immediate-health-check-fail would eject
 * the replica), LiteSpeed, lighttpd and mod_xsendfile, the forwarding headers, and
 * Next.js middleware; and our own controls.
 */
const FORBIDDEN_X_PREFIXES = [
  'x-accel-',
  'x-envoy-',
  'x-litespeed-',
  'x-lighttpd-',
  'x-sendfile',
  'x-forwarded-',
  'x-middleware-',
  'x-echo-',
];

export function headerAllowed(lower: string): boolean {
  if (ALLOWED_HEADERS.has(lower)) return true;
  return (
    lower.startsWith('x-') && !FORBIDDEN_X_HEADERS.has(lower) && !FORBIDDEN_X_PREFIXES.some((p) => lower.startsWith(p))
  );
}

/** `Name: value`. A Location must be a path on this server, so no open redirect. */
export function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ParseError(`"${clip(text)}" is not of the form Name: value`);
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  if (!TOKEN.test(name)) throw new ParseError(`"${clip(name)}" is not a valid header name`);
  if (!SAFE_VALUE.test(value) || value.length > 4096)
    throw new ParseError(`the value of ${clip(name)} has control characters or is longer than 4096`);
  const lower = name.toLowerCase();
  if (!headerAllowed(lower)) {
    throw new ParseError(
      `${name} cannot be set by a client: only X-… extension headers and ${[...ALLOWED_HEADERS].join(', ')} (see README, "Response controls")`,
    );
  }
  // A path: one slash, then anything but a second slash or a backslash (browsers
  // read `/\evil.com` as `//evil.com`). Control characters are already refused.
  if (lower === 'location' && !/^\/(?![/\\])[^\\]*$/.test(value)) {
    throw new ParseError('Location must be a path on this server, such as /next');
  }
  return [name, value];
}
