// Response controls: what a client may ask of the response, on any path.
// One naming scheme: the query parameter `echo_<name>` or the header `X-Echo-<Name>`
// (the query parameter wins when both are given). Every control is one row of
// CONTROLS: how its value is read, its bound, whether it works with --no-controls,
// the setting it needs, where it applies. parseControls, controlInput, scanHeaders,
// the probe paths' health control and the README table (checked by
// test/repo/docs.test.ts) all read that table. A bad value is a ControlError (400),
// a control whose setting is off one too (403).
//
// Pure: reading controls only says what was asked. Nothing here changes the health
// state, waits or writes; the handler applies what a control asks for, so the same
// parse serves every protocol and a test can call it without a server.
import { ParseError, parseDuration, parseSize } from '../util/parse.ts';
import { parseHealth, type HealthAction } from '../ops/health.ts';
import { REPRESENTATIONS, negotiate, parseRepresentation, type Representation } from '../echo/render/negotiate.ts';
import { SETTINGS, type Config } from '../config/settings.ts';
import { CONTROL_PREFIX } from '../core/header-names.ts';
import {
  MAX_STATUS_CHOICES, MAX_STATUS_WEIGHT, STATUS_CODES, parseHeader, parseStatus, type StatusChoice,
} from './control-values.ts';

// app.ts and the tests take these from here.
export {
  ALLOWED_HEADERS, FORBIDDEN_X_HEADERS, INTERIM_CODES, headerAllowed, parseHeader, parseStatus, pickStatus, type StatusChoice,
} from './control-values.ts';

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
}

/** The operator's limits on controls: settings (src/config/settings.ts), by their Config key. */
export type ControlLimits = Pick<Config, 'maxDelayMs' | 'maxGeneratedSize' | 'maxResponseHeaders'>;
/** A setting that must be on for a control to work at all (a boolean of Config). */
export type ControlGate = 'healthControl';
/** The gate settings, by their Config key. */
export type ControlGates = Pick<Config, ControlGate>;
/** Everything parseControls needs of the operator's settings. */
export type ControlSettings = ControlLimits & ControlGates;

/** What a control's value may be; parseControls enforces it and the README shows it. */
export type Bound =
  /** A whole number between fixed ends. */
  | { kind: 'range'; min: number; max: number }
  /** At most the operator's limit: a duration, a size, or a number of values (the control repeats). */
  | { kind: 'limit'; limit: keyof ControlLimits; unit: 'duration' | 'size' | 'count' }
  /** One word of a fixed list. */
  | { kind: 'one-of'; words: readonly string[] };

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
   * elsewhere (echo_format chooses the renderer, see pickFormat).
   */
  readonly read: ((into: Controls, values: readonly string[], max: number) => void) | null;
}

/** The echo itself: every protocol and rendering but WebSocket, whose first message is always the JSON echo. */
const ECHO: readonly Answer[] = ['HTTP/1.1', 'HTTP/2', 'HTML', 'SSE'];
const HEALTH_WORDS: readonly HealthAction[] = ['unready', 'fail', 'fail-once', 'ok'];

function control(spec: Omit<ControlSpec, 'query' | 'header'>): ControlSpec {
  return { ...spec, query: QUERY_PREFIX + spec.name, header: headerForm(spec.name) };
}

/** `X-Echo-Status` for `status`: how messages name a control given as a header. */
function headerForm(name: string): string {
  return `X-Echo-${name.charAt(0).toUpperCase()}${name.slice(1)}`;
}

/** Every control, in the order error messages and the README list them. */
export const CONTROLS: readonly ControlSpec[] = [
  control({
    name: 'status',
    example: '503',
    values: `a code, or weighted choices \`200:3,503:1\` (weight 1–${MAX_STATUS_WEIGHT}, at most ${MAX_STATUS_CHOICES})`,
    bound: { kind: 'range', min: STATUS_CODES.min, max: STATUS_CODES.max },
    withControlsOff: false, gate: null, appliesTo: ECHO,
    description: 'final status, or a weighted random choice; 100, 102 and 103 are sent as interim responses before a 200',
    read: (into, values) => { into.status = parseStatus(values[0]!); },
  }),
  control({
    name: 'delay',
    example: '1.5s',
    values: 'a duration: `250ms`, `2s`; bare numbers are ms',
    bound: { kind: 'limit', limit: 'maxDelayMs', unit: 'duration' },
    withControlsOff: false, gate: null, appliesTo: ECHO,
    description: 'wait this long before answering',
    read: (into, values, max) => { into.delayMs = parseDuration(values[0]!, max); },
  }),
  control({
    name: 'header',
    example: 'X-Debug: on',
    values: '`Name: value`, from the allowlist below; repeatable',
    bound: { kind: 'limit', limit: 'maxResponseHeaders', unit: 'count' },
    withControlsOff: false, gate: null, appliesTo: ECHO,
    description: 'add a response header',
    read: (into, values, max) => {
      if (values.length > max) throw new ParseError(`at most ${max} headers may be set`);
      into.headers = values.map(parseHeader);
    },
  }),
  control({
    name: 'size',
    example: '1KiB',
    values: 'a size: `1000`, `64KiB`, `10MB`',
    bound: { kind: 'limit', limit: 'maxGeneratedSize', unit: 'size' },
    withControlsOff: false, gate: null, appliesTo: ECHO,
    description: 'answer with this many generated bytes (`application/octet-stream`) instead of the echo, whatever the rendering',
    read: (into, values, max) => { into.size = parseSize(values[0]!, max); },
  }),
  control({
    name: 'health',
    example: 'unready',
    values: 'a health state',
    bound: { kind: 'one-of', words: HEALTH_WORDS },
    withControlsOff: false, gate: 'healthControl', appliesTo: [...ECHO, 'probes'],
    description: 'set the state the liveness and readiness checks report',
    read: (into, values) => { into.health = parseHealth(values[0]!); },
  }),
  control({
    name: 'format',
    example: 'json',
    values: 'a rendering; `sse` only with `--sse`',
    bound: { kind: 'one-of', words: REPRESENTATIONS },
    withControlsOff: true, gate: null, appliesTo: ECHO,
    description: 'choose the rendering, instead of the `Accept` header',
    read: null,
  }),
];

const BY_NAME = new Map(CONTROLS.map((c) => [c.name, c]));
const FORMAT = BY_NAME.get('format')!;
const KNOWN = CONTROLS.map((c) => c.query).join(', ');
/**
 * The --no-controls rule: only these are read with controls off. Short arrays, not
 * Sets: a Set would hash each fresh string, an array compares lengths first.
 */
const QUERY_WITH_CONTROLS_OFF: readonly string[] = CONTROLS.filter((c) => c.withControlsOff).map((c) => c.query);
const NAMES_WITH_CONTROLS_OFF: readonly string[] = CONTROLS.filter((c) => c.withControlsOff).map((c) => c.name);

/** A control by its name without prefix (`health`); undefined for a name not in CONTROLS. */
export function controlNamed(name: string): ControlSpec | undefined {
  return BY_NAME.get(name);
}

/** The upper end of a bound, with the operator's limits (for a list of words, how many; no reader uses it). */
export function boundMax(bound: Bound, limits: ControlLimits): number {
  switch (bound.kind) {
    case 'range': return bound.max;
    case 'limit': return limits[bound.limit];
    case 'one-of': return bound.words.length;
  }
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

/**
 * The refusal (403, naming the setting's flag) of a control whose gate setting is off;
 * null when the control has no gate or its gate is on.
 */
export function gateRefusal(spec: ControlSpec, gates: ControlGates): ControlError | null {
  if (spec.gate === null || gates[spec.gate]) return null;
  const flag = SETTINGS.find((s) => s.key === spec.gate)!.flag;
  return new ControlError(`the ${spec.name} control is disabled on this server (--${flag})`, 403);
}

/**
 * The controls asked for; echo_format is left to pickRepresentation. Throws a
 * ControlError: 400 for an unknown control or a bad value, else 403 for a control
 * whose gate is off. Every value is checked before any gate, so a bad value is a
 * 400 whatever the settings.
 */
export function parseControls(input: ControlInput, settings: ControlSettings): Controls {
  const controls: Controls = { status: null, delayMs: 0, headers: [], size: null, health: null };
  let refusal: ControlError | null = null;
  for (const [name, { source, values }] of input) {
    const spec = BY_NAME.get(name);
    if (spec === undefined) throw new ControlError(`unknown control ${source}; known: ${KNOWN}`);
    refusal ??= gateRefusal(spec, settings);
    if (spec.read === null) continue;
    try {
      spec.read(controls, values, boundMax(spec.bound, settings));
    } catch (err) {
      if (err instanceof ParseError) throw new ControlError(`invalid ${source}: ${err.message}`);
      throw err;
    }
  }
  if (refusal !== null) throw refusal;
  return controls;
}

/**
 * Control values from the query (`echo_*`) and headers (`X-Echo-*`, as collected by
 * scanHeaders); null when there are none, so a request without controls allocates
 * nothing here. With `controlsOn` false only the controls declared `withControlsOff`
 * are taken.
 */
export function controlInput(uri: string, q: number, headers: [string, string][] | null, controlsOn: boolean): ControlInput | null {
  let input: ControlInput | null = null;
  if (q >= 0 && uri.includes(QUERY_PREFIX, q)) {
    for (const [k, v] of new URLSearchParams(uri.slice(q + 1))) {
      if (!k.startsWith(QUERY_PREFIX) || !(controlsOn || QUERY_WITH_CONTROLS_OFF.includes(k))) continue;
      addControlInput((input ??= new Map() as ControlInput), k.slice(QUERY_PREFIX.length), k, v);
    }
  }
  if (headers !== null) {
    for (const [name, value] of headers) {
      if (!controlsOn && !NAMES_WITH_CONTROLS_OFF.includes(name)) continue;
      // The query wins: a header only fills a control the query did not set.
      if (input?.get(name)?.source.startsWith(QUERY_PREFIX)) continue;
      addControlInput((input ??= new Map() as ControlInput), name, BY_NAME.get(name)?.header ?? headerForm(name), value);
    }
  }
  return input;
}

/** A rendering or an event stream: an explicit echo_format / X-Echo-Format, else the Accept header. */
export function pickRepresentation(input: ControlInput | null, accept: string | undefined, sse: boolean): Representation {
  const requested = input?.get(FORMAT.name);
  if (requested === undefined) return negotiate(accept, sse);
  const chosen = parseRepresentation(requested.values[0]!);
  if (chosen === null || (chosen === 'sse' && !sse)) throw new ControlError(`invalid ${requested.source}: use text, json, html${sse ? ' or sse' : ''}`);
  return chosen;
}
