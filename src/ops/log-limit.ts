// Lines that clients can cause (malformed requests, failed handshakes, refused
// connections) are rate-limited: one 5-byte request must not buy a 150-byte log
// line without bound. A token bucket allows bursts; what it holds back is counted
// and reported on the next line that passes.
import type { Logger } from './logger.ts';

const BURST = 20;
const PER_SECOND = 5;

export type LimitedLog = (level: 'error' | 'warn' | 'info', fields: object, msg: string) => void;

export function limitedLog(logger: Logger): LimitedLog {
  let tokens = BURST;
  let last = performance.now();
  let suppressed = 0;
  return (level, fields, msg) => {
    const now = performance.now();
    tokens = Math.min(BURST, tokens + ((now - last) / 1000) * PER_SECOND);
    last = now;
    if (tokens < 1) {
      suppressed++;
      return;
    }
    tokens--;
    const held = suppressed;
    suppressed = 0;
    logger[level](held > 0 ? { ...fields, suppressedBefore: held } : fields, msg);
  };
}
