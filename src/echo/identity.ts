// Which replica answered: hostname and interface addresses, read once at start-up
// so the hot path never asks the kernel.
import { hostname, networkInterfaces } from 'node:os';

export interface Identity {
  hostname: string;
  addresses: string[];
  /** With --workers: which worker process answered (1..N). */
  worker?: number;
}

export function readIdentity(): Identity {
  const addresses: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (!a.internal) addresses.push(a.address);
    }
  }
  return { hostname: hostname(), addresses };
}
