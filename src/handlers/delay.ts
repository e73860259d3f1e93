// A delay the client asked for (the delay control) that ends early if it leaves.
// The handler's side of that control: reading it (request-controls.ts) sets no timer.
import type { ServerResponse } from 'node:http';

/** Waits, unless the client leaves first. */
export function delay(res: ServerResponse, ms: number, then: () => void): void {
  const timer = setTimeout(() => {
    res.off('close', cancel);
    then();
  }, ms);
  const cancel = () => clearTimeout(timer);
  res.once('close', cancel);
}
