// Response controls: what a client may ask of the response, on any path, declared
// as one table. One naming scheme: the query parameter `echo_<name>` or the header
// `X-Echo-<Name>` (the query parameter wins when both are given). Every control is
// one row of CONTROLS: how its value is read, its bound, whether it works with
// --no-controls, the setting it needs (its gate), where it applies. Reading a
// request's controls (request-controls.ts), scanHeaders, the probe paths' health
// control and the README table (checked by test/repo/docs.test.ts) all read it, so
// a new control is a new row and nothing else.
//
// Pure data: nothing here reads a request, changes the health state, waits or writes.
import { ParseError, clip, parseDuration, parseInteger, parseSize } from '../util/parse.ts';
import { parseHealth, type HealthAction } from '../ops/health.ts';
import { REPRESENTATIONS } from '../echo/render/negotiate.ts';
import type { Config } from '../config/settings.ts';
import { CONTROL_PREFIX } from '../core/header-names.ts';
import { parseFault, type FaultChoice } from './faults.ts';
import {
  MAX_STATUS_CHOICES,
  MAX_STATUS_WEIGHT,
  STATUS_CODES,
  parseHeader,
  parseStatus,
  parseWeightedValues,
  pickValue,
  type StatusChoice,
  type ValueChoice,
} from './values.ts';

// The handler's effects and the tests take these from here, with the table.
export {
  ALLOWED_HEADERS,
  FORBIDDEN_X_HEADERS,
  INTERIM_CODES,
  headerAllowed,
  parseHeader,
  parseStatus,
  pickStatus,
  pickValue,
  type StatusChoice,
  type ValueChoice,
} from './values.ts';

export const QUERY_PREFIX = 'echo_';
/** Lower-cased, as the header scan gives names. */
export const HEADER_PREFIX = CONTROL_PREFIX;

export interface Controls {
  /** Final status, or a weighted random choice among several. */
  status: StatusChoice[] | null;
  delayMs: number;
  headers: [string, string][];
  /** Generate a body of this many bytes instead of the echo. */
  size: number | null;
  /** The health state to set; the handler applies it. Only set when its gate is on. */
  health: HealthAction | null;
  /** A connection fault, or a weighted choice among faults and `none`. */
  fault: FaultChoice[] | null;
  /** Only the first this many attempts for the key get the failure controls (status, fault, delay). */
  failFirst: number | null;
  /** Which attempts count together for failFirst; null: the request target. */
  key: string | null;
  /**
   * The delay and size as distributions (weighted values, a jitter), null when not
   * asked for. delayMs and size hold one value picked from them (chooseValues), which
   * the answer reports back in X-Echo-Chosen-Delay and X-Echo-Chosen-Size.
   */
  delayChoices?: ValueChoice[] | null;
  sizeChoices?: ValueChoice[] | null;
  /** Send the body at this many bytes per second; null (or absent): as fast as the peer takes it. */
  rate?: number | null;
  /** Send the body in this many pieces, chunkDelayMs apart; null (or absent): as it comes. */
  chunks?: number | null;
  chunkDelayMs?: number;
  /** Compress the echo in this coding, or the one Accept-Encoding prefers (auto); null (or absent): plain. */
  compress?: CompressAsk | null;
}

/** The codings the compress control names (handlers/compress.ts compresses), and `auto`. */
export const CODINGS = ['gzip', 'br', 'zstd', 'deflate'] as const;
export type Coding = (typeof CODINGS)[number];
export const COMPRESS_WORDS = [...CODINGS, 'auto'] as const;
export type CompressAsk = (typeof COMPRESS_WORDS)[number];

/** The most pieces the chunks control may ask for. */
export const MAX_CHUNKS = 1000;

/** The fastest rate the rate control takes, in bytes per second (1 GiB/s: beyond that it paces nothing). */
export const MAX_RATE = 1024 ** 3;

/** The response headers that say which delay (ms) and size (bytes) a distribution gave. */
export const CHOSEN_DELAY_HEADER = 'X-Echo-Chosen-Delay';
export const CHOSEN_SIZE_HEADER = 'X-Echo-Chosen-Size';

/**
 * Picks this exchange's delay and size from their distributions (once: every
 * reader of delayMs and size sees the same value, and the answer reports it).
 */
export function chooseValues(controls: Controls, random: () => number): void {
  if (controls.delayChoices != null) controls.delayMs = pickValue(controls.delayChoices, random);
  if (controls.sizeChoices != null) controls.size = pickValue(controls.sizeChoices, random);
}

/** The chosen delay and size as [name, value, ...], for the answer's head or a call's metadata. */
export function chosenHeaders(controls: Controls): string[] {
  const out: string[] = [];
  if (controls.delayChoices != null) out.push(CHOSEN_DELAY_HEADER, String(controls.delayMs));
  if (controls.sizeChoices != null && controls.size !== null) out.push(CHOSEN_SIZE_HEADER, String(controls.size));
  return out;
}

/** The operator's limits on controls: settings (src/config/settings.ts), by their Config key. */
export type ControlLimits = Pick<Config, 'maxDelayMs' | 'maxGeneratedSize' | 'maxResponseHeaders'>;
/** A setting that must be on for a control to work at all (a boolean of Config). */
export type ControlGate = 'healthControl';
/** The gate settings, by their Config key. */
export type ControlGates = Pick<Config, ControlGate>;
/** Everything parsing a request's controls needs of the operator's settings. */
export type ControlSettings = ControlLimits & ControlGates;

/** What a control's value may be; parseControls enforces it and the README shows it. */
export type Bound =
  /** A whole number between fixed ends. */
  | { kind: 'range'; min: number; max: number }
  /** At most the operator's limit: a duration, a size, or a number of values (the control repeats). */
  | { kind: 'limit'; limit: keyof ControlLimits; unit: 'duration' | 'size' | 'count' }
  /** One word of a fixed list. */
  | { kind: 'one-of'; words: readonly string[] }
  /** A name of at most `max` characters: letters, digits and `-._~:`. */
  | { kind: 'length'; max: number };

/** Where a control can be read: the echo over each protocol and rendering, and the probe paths. */
export const ANSWERS = ['HTTP/1.1', 'HTTP/2', 'HTML', 'SSE', 'WebSocket', 'probes'] as const;
export type Answer = (typeof ANSWERS)[number];

export interface ControlSpec {
  /** Without prefix: `status` is `echo_status` and `X-Echo-Status`. */
  readonly name: string;
  readonly query: string;
  readonly header: string;
  /** A value within the default bounds (README, tests). */
  readonly example: string;
  /** What a value looks like (README). */
  readonly values: string;
  readonly bound: Bound;
  /** Still read under --no-controls. */
  readonly withControlsOff: boolean;
  /** A setting that must also be on, else 403 (see gateRefusal). */
  readonly gate: ControlGate | null;
  readonly appliesTo: readonly Answer[];
  /** One line for the README. */
  readonly description: string;
  /**
   * Reads the values into `into` within `max` (the bound's upper end); throws ParseError.
   * Only a repeatable control (a `count` bound) looks past the first value. Null: read
   * elsewhere (echo_format chooses the representation, see pickRepresentation).
   */
  readonly read: ((into: Controls, values: readonly string[], max: number) => void) | null;
}

/** The echo itself: every protocol and rendering but WebSocket, whose first message is always the JSON echo. */
const ECHO: readonly Answer[] = ['HTTP/1.1', 'HTTP/2', 'HTML', 'SSE'];
const HEALTH_WORDS: readonly HealthAction[] = ['unready', 'fail', 'fail-once', 'sick', 'ok'];

export const MAX_FAIL_FIRST = 1000;
export const MAX_KEY_LENGTH = 128;
const KEY = /^[A-Za-z0-9._~:-]+$/;

function parseKey(text: string, max: number): string {
  if (text.length > max || !KEY.test(text))
    throw new ParseError(`"${clip(text)}" is not a key of 1 to ${max} letters, digits or -._~:`);
  return text;
}

function parseCompress(text: string): CompressAsk {
  const word = text.trim().toLowerCase();
  if (!(COMPRESS_WORDS as readonly string[]).includes(word))
    throw new ParseError(`"${clip(text)}" is not one of ${COMPRESS_WORDS.join(', ')}`);
  return word as CompressAsk;
}

function control(spec: Omit<ControlSpec, 'query' | 'header'>): ControlSpec {
  return { ...spec, query: QUERY_PREFIX + spec.name, header: headerForm(spec.name) };
}

/** `X-Echo-Status` for `status`: how messages name a control given as a header. */
export function headerForm(name: string): string {
  // A header name has dashes where the query name has underscores (`fail_first` is
  // `X-Echo-Fail-First`): fronts such as nginx drop headers with underscores.
  return `X-Echo-${name
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('-')}`;
}

/** Every control, in the order error messages and the README list them. */
export const CONTROLS: readonly ControlSpec[] = [
  control({
    name: 'status',
    example: '503',
    values: `a code, or weighted choices \`200:3,503:1\` (weight 1–${MAX_STATUS_WEIGHT}, at most ${MAX_STATUS_CHOICES})`,
    bound: { kind: 'range', min: STATUS_CODES.min, max: STATUS_CODES.max },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'final status, or a weighted random choice; 100, 102 and 103 are sent as interim responses before a 200',
    read: (into, values) => {
      into.status = parseStatus(values[0]!);
    },
  }),
  control({
    name: 'delay',
    example: '1.5s',
    values: `a duration: \`250ms\`, \`2s\` (bare numbers are ms); a jitter \`100ms~20ms\`; weighted choices \`10ms:9,1s:1\` (weight 1–${MAX_STATUS_WEIGHT}, at most ${MAX_STATUS_CHOICES})`,
    bound: { kind: 'limit', limit: 'maxDelayMs', unit: 'duration' },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description: 'wait this long before answering; the delay waited is in `X-Echo-Chosen-Delay` (ms)',
    read: (into, values, max) => {
      into.delayChoices = parseWeightedValues(values[0]!, (t) => parseDuration(t, max), max, true);
      into.delayMs = into.delayChoices[0]!.value;
    },
  }),
  control({
    name: 'header',
    example: 'X-Debug: on',
    values: '`Name: value`, from the allowlist below; repeatable',
    bound: { kind: 'limit', limit: 'maxResponseHeaders', unit: 'count' },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description: 'add a response header',
    read: (into, values, max) => {
      if (values.length > max) throw new ParseError(`at most ${max} headers may be set`);
      into.headers = values.map(parseHeader);
    },
  }),
  control({
    name: 'size',
    example: '1KiB',
    values: `a size: \`1000\`, \`64KiB\`, \`10MB\`; weighted choices \`1KiB:9,1MiB:1\` (weight 1–${MAX_STATUS_WEIGHT}, at most ${MAX_STATUS_CHOICES})`,
    bound: { kind: 'limit', limit: 'maxGeneratedSize', unit: 'size' },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'answer with this many generated bytes (`application/octet-stream`) instead of the echo, whatever the rendering; the size is in `X-Echo-Chosen-Size`',
    read: (into, values, max) => {
      into.sizeChoices = parseWeightedValues(values[0]!, (t) => parseSize(t, max), max, false);
      into.size = into.sizeChoices[0]!.value;
    },
  }),
  control({
    name: 'rate',
    example: '100KiB',
    values: 'a size per second: `100KiB` sends 100 KiB each second',
    bound: { kind: 'range', min: 1, max: MAX_RATE },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'send the body (the echo or a generated one) at this many bytes per second; refused (400) when it would take past `--max-delay`, delay included, or on an event stream',
    read: (into, values, max) => {
      into.rate = parseSize(values[0]!, max, 1);
    },
  }),
  control({
    name: 'chunks',
    example: '4',
    values: 'a number of pieces',
    bound: { kind: 'range', min: 1, max: MAX_CHUNKS },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'send the body (the echo or a generated one) in this many pieces, without `Content-Length` (HTTP/1.1: one chunk each); refused (400) with `echo_rate`, on an event stream, or when the waits between pieces, delay included, pass `--max-delay`',
    read: (into, values, max) => {
      into.chunks = parseInteger(values[0]!, 1, max);
    },
  }),
  control({
    name: 'chunk_delay',
    example: '100ms',
    values: 'a duration: `250ms`, `2s`; bare numbers are ms',
    bound: { kind: 'limit', limit: 'maxDelayMs', unit: 'duration' },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description: 'the wait between the pieces of `echo_chunks` (without it the body is one piece, so it has no effect)',
    read: (into, values, max) => {
      into.chunkDelayMs = parseDuration(values[0]!, max);
    },
  }),
  control({
    name: 'compress',
    example: 'gzip',
    values: "a coding, or `auto`: the best the client's `Accept-Encoding` takes (q-values honoured)",
    bound: { kind: 'one-of', words: COMPRESS_WORDS },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'compress the echo (gzip, br, zstd, deflate) with `Vary: Accept-Encoding`; 406 when the client does not accept the coding named; refused (400) on an event stream and with `echo_size`, `echo_rate` or `echo_chunks` (see docs/faults.md)',
    read: (into, values) => {
      into.compress = parseCompress(values[0]!);
    },
  }),
  control({
    name: 'health',
    example: 'unready',
    values: 'a health state',
    bound: { kind: 'one-of', words: HEALTH_WORDS },
    withControlsOff: false,
    gate: 'healthControl',
    appliesTo: [...ECHO, 'probes'],
    description: 'set the state the liveness and readiness checks report',
    read: (into, values) => {
      into.health = parseHealth(values[0]!);
    },
  }),
  control({
    name: 'fault',
    example: 'none',
    values:
      '`reset`, `reset:CODE` (an HTTP/2 error code by its RFC 9113 name, `reset:REFUSED_STREAM`; a number after `reset:` is a weight, as in `reset:1,none:9`), `close`, `truncate:SIZE`, `reset-after:SIZE`, `goaway` (HTTP/2), `none`; or weighted choices `reset:1,none:9`',
    bound: { kind: 'limit', limit: 'maxGeneratedSize', unit: 'size' },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'break the connection: RST or FIN before any byte, or after SIZE bytes of the body; over HTTP/2 reset the stream only, or GOAWAY after the answer; refused on an event stream (see docs/faults.md)',
    read: (into, values, max) => {
      into.fault = parseFault(values[0]!, max);
    },
  }),
  control({
    name: 'fail_first',
    example: '2',
    values: 'a number of attempts',
    bound: { kind: 'range', min: 0, max: MAX_FAIL_FIRST },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description:
      'only the first N attempts for the key (`echo_key`, else the request target) get the status, fault and delay asked for; later ones succeed; counted per replica (see docs/faults.md)',
    read: (into, values) => {
      into.failFirst = parseInteger(values[0]!, 0, MAX_FAIL_FIRST);
    },
  }),
  control({
    name: 'key',
    example: 'retry-1',
    values: 'a name: letters, digits, `-._~:`',
    bound: { kind: 'length', max: MAX_KEY_LENGTH },
    withControlsOff: false,
    gate: null,
    appliesTo: ECHO,
    description: 'the key `echo_fail_first` counts attempts by',
    read: (into, values, max) => {
      into.key = parseKey(values[0]!, max);
    },
  }),
  control({
    name: 'format',
    example: 'json',
    values: 'a rendering; `sse` only with `--sse`',
    bound: { kind: 'one-of', words: REPRESENTATIONS },
    withControlsOff: true,
    gate: null,
    appliesTo: ECHO,
    description: 'choose the rendering, instead of the `Accept` header',
    read: null,
  }),
];

const BY_NAME = new Map(CONTROLS.map((c) => [c.name, c]));

/** A control by its name without prefix (`health`); undefined for a name not in CONTROLS. */
export function controlNamed(name: string): ControlSpec | undefined {
  return BY_NAME.get(name);
}

/** The upper end of a bound, with the operator's limits (for a list of words, how many; no reader uses it). */
export function boundMax(bound: Bound, limits: ControlLimits): number {
  switch (bound.kind) {
    case 'range':
      return bound.max;
    case 'limit':
      return limits[bound.limit];
    case 'one-of':
      return bound.words.length;
    case 'length':
      return bound.max;
  }
}
