// What a sick replica answers (health state `sick`, --sick-answer): a 5xx status or
// a connection fault, in place of the echo, while its probes stay green.
import type { ConnectionFault } from '../core/answer-port.ts';
import { parseFault } from '../controls/faults.ts';
import { sendText } from './answer.ts';
import type { HandlerExchange } from './exchange.ts';

export type SickAnswer = { status: number; fault: null } | { status: null; fault: ConnectionFault };

/** The setting's value, which the settings table has checked already. */
export function sickAnswerOf(text: string): SickAnswer {
  if (/^\d+$/.test(text)) return { status: Number(text), fault: null };
  return { status: null, fault: parseFault(text, 0)[0]!.fault as ConnectionFault };
}

export function answerSick(x: HandlerExchange, answer: SickAnswer): void {
  if (answer.fault !== null) x.fault(answer.fault);
  else sendText(x, answer.status, 'this replica is sick (health state sick; --sick-answer)\n');
}
