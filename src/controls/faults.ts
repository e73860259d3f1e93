// The value of the fault control: a connection fault, or a weighted choice among
// several (`reset:1,none:9`), as echo_status is a weighted choice of statuses. Pure:
// the adapters carry a fault out, each in its protocol's own way.
import { ParseError, clip, parseInteger, parseSize } from '../util/parse.ts';
import type { ConnectionFault } from '../core/answer-port.ts';
import { MAX_STATUS_CHOICES, MAX_STATUS_WEIGHT, pickStatus } from './values.ts';

/** The HTTP/2 error codes a reset may carry (RFC 9113, section 7), by name. */
export const H2_CODES: Readonly<Record<string, number>> = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
  INADEQUATE_SECURITY: 12,
  HTTP_1_1_REQUIRED: 13,
};
/** A reset without a code: INTERNAL_ERROR, "the stream broke", which every client treats as a failure. */
export const DEFAULT_RESET_CODE = H2_CODES.INTERNAL_ERROR!;

export const FAULT_KINDS = ['none', 'reset', 'close', 'truncate', 'reset-after', 'goaway'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A fault, or `none` (a weighted list's way to say "answer normally"). */
export type Fault =
  ConnectionFault | { readonly kind: 'none'; readonly bytes: 0; readonly h2Code: 0; readonly label: 'none' };

export interface FaultChoice {
  fault: Fault;
  weight: number;
}

const NONE: Fault = { kind: 'none', bytes: 0, h2Code: 0, label: 'none' };

function weightOf(text: string | undefined): number {
  return text === undefined ? 1 : parseInteger(text, 1, MAX_STATUS_WEIGHT);
}

/**
 * One choice: `none`, `close`, `goaway`, `reset`, `reset:CODE` (an HTTP/2 error code
 * by name), `truncate:SIZE`, `reset-after:SIZE`, each optionally `:WEIGHT`.
 */
function parseChoice(part: string, maxBytes: number): FaultChoice {
  const [word = '', ...rest] = part.trim().split(':');
  const kind = word.toLowerCase();
  if (rest.length > 2) throw new ParseError(`"${clip(part)}" has too many parts`);
  switch (kind) {
    case 'none':
    case 'close':
    case 'goaway':
      if (rest.length > 1) throw new ParseError(`"${clip(part)}": ${kind} takes only a weight`);
      return { fault: kind === 'none' ? NONE : { kind, bytes: 0, h2Code: 0, label: kind }, weight: weightOf(rest[0]) };
    case 'reset': {
      // `reset:2` is a weight, `reset:CANCEL` a code: codes go by name only.
      let code = DEFAULT_RESET_CODE;
      let name: string | null = null;
      let weightText: string | undefined = rest[0];
      if (rest[0] !== undefined && !/^\d+$/.test(rest[0])) {
        name = rest[0].toUpperCase();
        const known = H2_CODES[name];
        if (known === undefined || !Object.hasOwn(H2_CODES, name))
          throw new ParseError(
            `"${clip(rest[0])}" is not an HTTP/2 error code; use ${Object.keys(H2_CODES).join(', ')}`,
          );
        code = known;
        weightText = rest[1];
      } else if (rest.length > 1) {
        throw new ParseError(`"${clip(part)}" is not reset[:CODE][:WEIGHT]`);
      }
      return {
        fault: { kind: 'reset', bytes: 0, h2Code: code, label: name === null ? 'reset' : `reset:${name}` },
        weight: weightOf(weightText),
      };
    }
    case 'truncate':
    case 'reset-after': {
      if (rest[0] === undefined) throw new ParseError(`${kind} needs a size: ${kind}:4KiB`);
      const bytes = parseSize(rest[0], maxBytes);
      return {
        fault: { kind, bytes, h2Code: DEFAULT_RESET_CODE, label: `${kind}:${bytes}` },
        weight: weightOf(rest[1]),
      };
    }
    default:
      throw new ParseError(`"${clip(word)}" is not a fault; use ${FAULT_KINDS.join(', ')}`);
  }
}

/** `reset`, or weighted choices `reset:1,none:9`; sizes at most `maxBytes`. */
export function parseFault(text: string, maxBytes: number): FaultChoice[] {
  const parts = text.split(',');
  if (parts.length > MAX_STATUS_CHOICES) throw new ParseError(`at most ${MAX_STATUS_CHOICES} choices`);
  return parts.map((p) => parseChoice(p, maxBytes));
}

/** Picks a fault from weighted choices (`random` returns [0, 1)); null for none. */
export function pickFault(choices: readonly FaultChoice[], random: () => number): ConnectionFault | null {
  const i =
    choices.length === 1
      ? 0
      : pickStatus(
          choices.map((c, index) => ({ code: index, weight: c.weight })),
          random,
        );
  const { fault } = choices[i]!;
  return fault.kind === 'none' ? null : fault;
}

/**
 * Why these faults cannot apply to this answer, or null: an event stream has no end
 * to cut short and no length to fall short of, and GOAWAY is HTTP/2's.
 */
export function faultRefusal(
  choices: readonly FaultChoice[] | null,
  eventStream: boolean,
  http2: boolean,
): string | null {
  if (choices === null) return null;
  if (eventStream) return 'echo_fault (X-Echo-Fault) does not apply to an event stream';
  if (!http2 && choices.some((c) => c.fault.kind === 'goaway'))
    return 'echo_fault=goaway needs HTTP/2: HTTP/1.1 has no GOAWAY (use close)';
  return null;
}
