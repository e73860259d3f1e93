// The controls that shape any answer, whatever its body: extra response headers,
// interim (1xx) responses, and the final status (a weighted choice when several).
// The effect side: request-controls.ts only says what was asked; writing it to the
// answer is left to the handlers, here, because it needs the exchange.
import type { AnswerPort } from '../core/answer-port.ts';
import { INTERIM_CODES, chosenHeaders, pickStatus, type Controls } from '../controls/table.ts';
import type { HeadFields } from './answer.ts';

/** Appends the control's extra headers (and the delay and size a distribution gave) to `headers` and sends interim responses; returns the final status. */
export function controlledStatus(
  x: AnswerPort,
  controls: Controls | null,
  headers: HeadFields,
  random: () => number,
): number {
  if (controls === null) return 200;
  for (const [name, value] of controls.headers) headers.push(name, value);
  headers.push(...chosenHeaders(controls));
  if (controls.status === null) return 200;
  const code = pickStatus(controls.status, random);
  if (!INTERIM_CODES.has(code)) return code;
  x.interim(code);
  return 200;
}
