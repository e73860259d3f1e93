// A delay the client asked for (the delay control) that ends early if it leaves.
// The handler's side of that control: reading it (controls/read.ts) sets no timer.
import type { AnswerPort } from '../core/answer-port.ts';

/** Waits, unless the client leaves first. */
export function delay(x: AnswerPort, ms: number, then: () => void): void {
  const timer = setTimeout(() => {
    forget();
    then();
  }, ms);
  const forget = x.onPeerGone(() => clearTimeout(timer));
}
