// Generated response bodies for bandwidth tests. One 1 MiB block of random bytes
// is made on first use and written repeatedly with back-pressure, so a 1 GiB answer
// never holds more than that block in memory. Random bytes defeat compression in
// proxies, and the block is far longer than gzip's window, so it stays
// incompressible. Large writes matter: 64 KiB writes measured about 40% slower for
// 1 MiB answers than one write of the whole block.
import { randomBytes } from 'node:crypto';
import type { AnswerPort } from '../core/answer-port.ts';
import { chunkedWrite, pacedWrite } from './paced-body.ts';

export const BLOCK_SIZE = 1024 * 1024;

export class GeneratedBody {
  #block: Buffer | undefined;

  /** Writes `size` bytes through the port, then ends the answer; reports progress as bytes written. */
  pipe(out: AnswerPort, size: number, progress: (written: number) => void): void {
    const block = (this.#block ??= randomBytes(BLOCK_SIZE));
    let written = 0;
    const write = (): void => {
      while (written < size) {
        const n = Math.min(BLOCK_SIZE, size - written);
        written += n;
        progress(written);
        if (!out.write(n === BLOCK_SIZE ? block : block.subarray(0, n))) {
          out.onDrain(write);
          return;
        }
      }
      out.end();
    };
    write();
  }

  /** As pipe, in `pieces` pieces `delayMs` apart (paced-body.ts). */
  chunked(out: AnswerPort, size: number, pieces: number, delayMs: number, progress: (written: number) => void): void {
    const block = (this.#block ??= randomBytes(BLOCK_SIZE));
    chunkedWrite(
      out,
      size,
      pieces,
      delayMs,
      (offset, most) => {
        const at = offset % BLOCK_SIZE;
        return block.subarray(at, Math.min(BLOCK_SIZE, at + most));
      },
      progress,
    );
  }

  /** As pipe, at `rate` bytes per second (paced-body.ts). */
  paced(out: AnswerPort, size: number, rate: number, progress: (written: number) => void): void {
    const block = (this.#block ??= randomBytes(BLOCK_SIZE));
    pacedWrite(
      out,
      size,
      rate,
      (offset, most) => {
        const at = offset % BLOCK_SIZE;
        return block.subarray(at, Math.min(BLOCK_SIZE, at + most));
      },
      progress,
    );
  }
}
