// A body written at a rate the client asked for (the rate control): a slice every
// tick, as much as the rate allows since the head went out, and nothing ahead of a
// peer that is behind (the next slice waits for its drain). Its timer ends when the
// peer goes; the port records that exchange as aborted, once.
import type { AnswerPort } from '../core/answer-port.ts';
import { formatDuration } from '../util/parse.ts';

/** How often a paced body writes: short enough to look smooth, long enough to cost nothing. */
const TICK_MS = 100;

/** How long `size` bytes take at `rate` bytes per second, in ms. */
export function pacedMs(size: number, rate: number): number {
  return Math.ceil((size * 1000) / rate);
}

/**
 * The refusal of a rate that would take the answer past --max-delay (with the
 * delay already asked for), or null.
 */
export function rateRefusal(
  source: string,
  rate: number,
  size: number,
  delayMs: number,
  maxDelayMs: number,
): string | null {
  if (delayMs + pacedMs(size, rate) <= maxDelayMs) return null;
  return (
    `invalid ${source}: ${rate} bytes per second takes ${formatDuration(pacedMs(size, rate))} for ${size} bytes` +
    `${delayMs > 0 ? ` after a delay of ${formatDuration(delayMs)}` : ''}, over the maximum of ${formatDuration(maxDelayMs)} (--max-delay)`
  );
}

/**
 * Writes `size` bytes, taken from `slice(offset, most)`, at `rate` bytes per second
 * on average since the call, then ends the answer; reports progress as bytes written.
 */
export function pacedWrite(
  out: AnswerPort,
  size: number,
  rate: number,
  slice: (offset: number, most: number) => Uint8Array,
  progress: (written: number) => void,
): void {
  const start = performance.now();
  let written = 0;
  const step = (): void => {
    if (loop.gone()) return;
    const due = Math.min(size, Math.floor((rate * (performance.now() - start)) / 1000));
    while (written < due) {
      const piece = slice(written, due - written);
      written += piece.length;
      progress(written);
      if (!out.write(piece)) {
        out.onDrain(loop.next);
        return;
      }
    }
    loop.next();
  };
  const loop = writeLoop(out, () => written >= size, TICK_MS, step);
  loop.next();
}

/**
 * Writes `size` bytes in `pieces` pieces (fewer when there are fewer bytes), one
 * write each (a generated piece over 1 MiB: one per MiB), waiting `delayMs` between them and for the peer's drain, then ends
 * the answer; reports progress as bytes written.
 */
export function chunkedWrite(
  out: AnswerPort,
  size: number,
  pieces: number,
  delayMs: number,
  slice: (offset: number, most: number) => Uint8Array,
  progress: (written: number) => void,
): void {
  const count = Math.max(1, Math.min(pieces, size));
  const pieceSize = Math.ceil(size / count);
  let written = 0;
  let end = 0;
  // A piece is one write unless a generated body's 1 MiB block is shorter: then
  // several, each waiting for the drain, so nothing larger than the block is copied.
  const part = (): void => {
    while (!loop.gone() && written < end) {
      const bytes = slice(written, end - written);
      written += bytes.length;
      progress(written);
      if (!out.write(bytes)) {
        out.onDrain(part);
        return;
      }
    }
    loop.next();
  };
  const piece = (): void => {
    if (loop.gone()) return;
    end = Math.min(size, written + pieceSize);
    part();
  };
  const loop = writeLoop(out, () => written >= size, delayMs, piece);
  piece();
}

/**
 * The wait between writes that both pacings share: `next` ends the answer once
 * everything is written, else runs `step` after `waitMs`; the peer going stops it.
 */
function writeLoop(
  out: AnswerPort,
  done: () => boolean,
  waitMs: number,
  step: () => void,
): { gone: () => boolean; next: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let gone = false;
  const forget = out.onPeerGone(() => {
    gone = true;
    clearTimeout(timer);
  });
  return {
    gone: () => gone,
    next: () => {
      if (gone) return;
      if (done()) {
        forget();
        out.end();
        return;
      }
      timer = setTimeout(step, waitMs);
    },
  };
}
