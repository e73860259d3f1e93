// The controls a request carries: collected from the query (`echo_*`) and the
// headers (`X-Echo-*`), parsed against the CONTROLS table within the operator's
// limits, refused when a control's gate setting is off, and the representation
// (rendering or event stream) it asks for. A bad value is a ControlError (400), a
// control whose gate is off one too (403).
//
// Pure: this only says what was asked. Nothing here changes the health state, waits
// or writes; the handler applies what a control asks for, so the same reading serves
// every protocol and a test calls it without a server.
import { ParseError } from '../util/parse.ts';
import { negotiate, parseRepresentation, type Representation } from '../echo/render/negotiate.ts';
import { FORMATS } from '../echo/render/renderers.ts';
import { SETTINGS } from '../config/settings.ts';
import {
  CONTROLS,
  QUERY_PREFIX,
  boundMax,
  controlNamed,
  headerForm,
  type ControlGates,
  type ControlSettings,
  type ControlSpec,
  type Controls,
} from './table.ts';

const FORMAT = controlNamed('format')!;
const KNOWN = CONTROLS.map((c) => c.query).join(', ');
/**
 * The --no-controls rule: only these are read with controls off. Short arrays, not
 * Sets: a Set would hash each fresh string, an array compares lengths first.
 */
const QUERY_WITH_CONTROLS_OFF: readonly string[] = CONTROLS.filter((c) => c.withControlsOff).map((c) => c.query);
const NAMES_WITH_CONTROLS_OFF: readonly string[] = CONTROLS.filter((c) => c.withControlsOff).map((c) => c.name);

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
  const controls: Controls = {
    status: null,
    delayMs: 0,
    headers: [],
    size: null,
    health: null,
    fault: null,
    failFirst: null,
    key: null,
  };
  let refusal: ControlError | null = null;
  for (const [name, { source, values }] of input) {
    const spec = controlNamed(name);
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
export function controlInput(
  uri: string,
  q: number,
  headers: [string, string][] | null,
  controlsOn: boolean,
): ControlInput | null {
  let input: ControlInput | null = null;
  if (q >= 0 && uri.includes(QUERY_PREFIX, q)) {
    for (const [k, v] of new URLSearchParams(uri.slice(q + 1))) {
      if (!k.startsWith(QUERY_PREFIX) || !(controlsOn || QUERY_WITH_CONTROLS_OFF.includes(k))) continue;
      addControlInput((input ??= new Map() as ControlInput), k.slice(QUERY_PREFIX.length), k, v);
    }
  }
  if (headers !== null) {
    for (const [header, value] of headers) {
      const name = header.includes('-') ? header.replaceAll('-', '_') : header;
      if (!controlsOn && !NAMES_WITH_CONTROLS_OFF.includes(name)) continue;
      // The query wins: a header only fills a control the query did not set.
      if (input?.get(name)?.source.startsWith(QUERY_PREFIX)) continue;
      addControlInput(
        (input ??= new Map() as ControlInput),
        name,
        controlNamed(name)?.header ?? headerForm(name),
        value,
      );
    }
  }
  return input;
}

/** A rendering or an event stream: an explicit echo_format / X-Echo-Format, else the Accept header. */
export function pickRepresentation(
  input: ControlInput | null,
  accept: string | undefined,
  sse: boolean,
): Representation {
  const requested = input?.get(FORMAT.name);
  if (requested === undefined) return negotiate(accept, sse);
  const chosen = parseRepresentation(requested.values[0]!);
  if (chosen === null || (chosen === 'sse' && !sse))
    throw new ControlError(`invalid ${requested.source}: use ${FORMATS.join(', ')}${sse ? ' or sse' : ''}`);
  return chosen;
}
