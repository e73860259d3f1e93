// The health control on the probe paths themselves (see healthControlAnswer).
import { parseHealth, type Health } from '../ops/health.ts';
import { ParseError } from '../util/parse.ts';
import { controlInput } from './controls.ts';
import type { HeaderScan } from '../core/request-head.ts';

/**
 * The health control on a request to the liveness or readiness path (`?echo_health=`
 * or `X-Echo-Health`), so the state can be set where only the operations paths are
 * reachable (a port-forward to one pod, a probe-only route). It sets the state and
 * acknowledges without running the check; null when the request carries no such
 * control, and the path answers its check as usual. Gated by --health-control alone.
 */
export function healthControlAnswer(uri: string, headerControls: HeaderScan['controls'], enabled: boolean, health: Health): { status: number; body: string } | null {
  const q = uri.indexOf('?');
  // --controls does not govern this: the probe paths read the health control whenever --health-control is on.
  const input = controlInput(uri, q, headerControls, true);
  const entry = input?.get('health');
  if (entry === undefined) return null;
  if (!enabled) return { status: 403, body: 'the health control is disabled on this server (--health-control)\n' };
  try {
    const action = parseHealth(entry.values[0]!);
    health.apply(action);
    return { status: 200, body: `health: ${action}\n` };
  } catch (err) {
    if (err instanceof ParseError) return { status: 400, body: `invalid ${entry.source}: ${err.message}\n` };
    throw err;
  }
}
