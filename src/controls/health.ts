// The health control on the probe paths themselves (see healthControlAnswer). Pure:
// it says what to answer and which state to set; the probe route applies the state.
import { parseHealth, type HealthAction } from '../ops/health.ts';
import { ParseError } from '../util/parse.ts';
import { controlNamed, type ControlGates } from './table.ts';
import { controlInput, gateRefusal } from './read.ts';
import type { HeaderScan } from '../core/request-head.ts';

const HEALTH = controlNamed('health')!;

/** The answer to a health control on a probe path, and the state it asks for. */
export interface HealthControlAnswer {
  status: number;
  body: string;
  /** The state to set before answering; null when the control is refused. */
  set: HealthAction | null;
}

/**
 * The health control on a request to the liveness or readiness path (`?echo_health=`
 * or `X-Echo-Health`), so the state can be set where only the operations paths are
 * reachable (a port-forward to one pod, a probe-only route). Setting the state is
 * acknowledged without running the check; null when the request carries no such
 * control, and the path answers its check as usual. Gated by the control's gate
 * setting alone (--health-control).
 */
export function healthControlAnswer(
  uri: string,
  headerControls: HeaderScan['controls'],
  gates: ControlGates,
): HealthControlAnswer | null {
  const q = uri.indexOf('?');
  // --controls does not govern this: the probe paths read the health control whenever its gate is on.
  const input = controlInput(uri, q, headerControls, true);
  const entry = input?.get(HEALTH.name);
  if (entry === undefined) return null;
  // The gate before the value: a server with the control off says so, whatever was sent.
  const refusal = gateRefusal(HEALTH, gates);
  if (refusal !== null) return { status: refusal.status, body: refusal.message + '\n', set: null };
  try {
    const set = parseHealth(entry.values[0]!);
    return { status: 200, body: `health: ${set}\n`, set };
  } catch (err) {
    if (err instanceof ParseError) return { status: 400, body: `invalid ${entry.source}: ${err.message}\n`, set: null };
    throw err;
  }
}
