// Each connection costs a file descriptor. When the process may open fewer than
// --max-connections allows (Docker's default soft limit is 1024), the descriptor
// limit is the real connection limit, and hitting it refuses connections with no
// log line at all; so the operator is told at start-up.
import { readFileSync } from 'node:fs';

/** The soft limit on open files, or null where /proc is not there to say. */
export function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m === null) return null;
    return m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
  } catch {
    return null;
  }
}

/** Descriptors the server uses besides connections: listeners, logs, certificates, libraries. */
const RESERVED = 64;

export function fdLimitWarning(maxConnections: number, limit = openFilesLimit()): string | null {
  if (limit === null || limit >= maxConnections + RESERVED) return null;
  return (
    `the open-files limit (${limit}) is below --max-connections (${maxConnections}) plus ${RESERVED}: ` +
    `about ${Math.max(0, limit - RESERVED)} connections can be open at once; raise it (docker run --ulimit nofile=…) or lower --max-connections`
  );
}
