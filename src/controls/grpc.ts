// The response controls of a gRPC call: the same names as the HTTP headers, read
// from its metadata (`x-echo-status`, `x-echo-delay`, `x-echo-size`,
// `x-echo-header`, `x-echo-health`), with two differences: a status is a gRPC code
// 0-16 (or weighted codes, `14:1,0:3`), and `x-echo-trailer` adds trailing metadata,
// which only a gRPC answer has (an HTTP echo ends without trailers, so the control
// is not a row of the CONTROLS table). Pure, like the rest of controls/: what was
// asked, never its effect. A bad value is a ControlError, which the call answers
// with INVALID_ARGUMENT naming the control.
import { ParseError, parseInteger } from '../util/parse.ts';
import { ControlError, controlInput, parseControls } from './read.ts';
import type { ControlSettings, Controls } from './table.ts';
import { parseHeader, parseWeightedCodes, type StatusChoice } from './values.ts';

/** A call's controls: the HTTP ones, plus the trailing metadata to add. */
export interface GrpcControls extends Controls {
  /** `x-echo-trailer` entries, names lower-cased (as HTTP/2 carries them), in the order asked. */
  trailers: [string, string][];
}

/** The header form of the trailer control, as messages name it. */
export const TRAILER_CONTROL = 'X-Echo-Trailer';

/** gRPC's status codes: OK (0) to UNAUTHENTICATED (16). */
export const GRPC_STATUS_CODES = { min: 0, max: 16 } as const;

/** `14`, or weighted codes such as `0:3,14:1`. */
export function parseGrpcStatus(text: string): StatusChoice[] {
  return parseWeightedCodes(
    text,
    (t) => parseInteger(t, GRPC_STATUS_CODES.min, GRPC_STATUS_CODES.max),
    (t) => t.trim(),
  );
}

/**
 * A call's controls from its `x-echo-*` metadata (as scanHeaders collects them);
 * null when there are none. `format` means nothing to gRPC and is ignored. Throws
 * ControlError.
 */
export function parseGrpcControls(
  headers: [string, string][] | null,
  controlsOn: boolean,
  settings: ControlSettings,
): GrpcControls | null {
  const input = controlInput('', -1, headers, controlsOn);
  if (input === null) return null;
  const status = input.get('status');
  const trailer = input.get('trailer');
  input.delete('status');
  input.delete('trailer');
  input.delete('format');
  const controls: GrpcControls = { ...parseControls(input, settings), trailers: [] };
  if (trailer !== undefined) controls.trailers = parseTrailers(trailer.values, settings.maxResponseHeaders);
  // A call's answer is framed messages and trailers: a cut at a byte count means
  // nothing to a gRPC client that reset does not already say.
  if (controls.fault?.some((c) => c.fault.kind === 'truncate' || c.fault.kind === 'reset-after')) {
    throw new ControlError(
      'invalid x-echo-fault: truncate and reset-after do not apply to gRPC (use reset, reset:CODE, close or goaway)',
    );
  }
  // A call's messages are paced by their method (a server stream's interval), not by a byte rate.
  if (controls.rate != null) throw new ControlError('x-echo-rate does not apply to gRPC calls');
  if (controls.chunks != null) throw new ControlError('x-echo-chunks does not apply to gRPC calls');
  if (status !== undefined) {
    try {
      controls.status = parseGrpcStatus(status.values[0]!);
    } catch (err) {
      if (err instanceof ParseError)
        throw new ControlError(
          `invalid x-echo-status: ${err.message} (a gRPC status code ${GRPC_STATUS_CODES.min}-${GRPC_STATUS_CODES.max})`,
        );
      throw err;
    }
  }
  return controls;
}

/**
 * `x-echo-trailer: Name: value` entries: the x-echo-header grammar and allowlist
 * (so grpc-status, grpc-message and every reserved name are refused), at most
 * --max-response-headers of them.
 */
function parseTrailers(values: readonly string[], max: number): [string, string][] {
  try {
    if (values.length > max) throw new ParseError(`at most ${max} trailers may be set`);
    return values.map((v) => {
      const [name, value] = parseHeader(v);
      return [name.toLowerCase(), value];
    });
  } catch (err) {
    if (err instanceof ParseError) throw new ControlError(`invalid ${TRAILER_CONTROL}: ${err.message}`);
    throw err;
  }
}
