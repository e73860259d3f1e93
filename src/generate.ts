// Generated response bodies for bandwidth tests. One 64 KiB block of random bytes
// is made at start-up and written repeatedly with back-pressure, so a 1 GiB answer
// never holds more than one block in memory. Random bytes defeat compression in
// proxies, and the block is longer than gzip's window, so it stays incompressible.
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';

const BLOCK_SIZE = 64 * 1024;

export class GeneratedBody {
  readonly #block = randomBytes(BLOCK_SIZE);

  /** Writes `size` bytes to `out`, then ends it; reports progress as bytes written. */
  pipe(out: Writable, size: number, progress: (written: number) => void): void {
    let written = 0;
    const write = (): void => {
      while (written < size) {
        const n = Math.min(BLOCK_SIZE, size - written);
        written += n;
        progress(written);
        const more = out.write(n === BLOCK_SIZE ? this.#block : this.#block.subarray(0, n));
        if (!more) {
          out.once('drain', write);
          return;
        }
      }
      out.end();
    };
    out.once('close', () => out.off('drain', write));
    write();
  }
}
