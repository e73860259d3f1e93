// The count behind a fault that cuts a body short (truncate:SIZE, reset-after:SIZE),
// whatever protocol carries the body: the writes pass while the body stays under
// SIZE, the one that reaches it (or the last, if the body is shorter) goes only up
// to SIZE, and then the cut is due. How the cut is made is the adapter's: a FIN or
// a TCP RST over HTTP/1.1, RST_STREAM over HTTP/2.
import type { ConnectionFault } from './answer-port.ts';

export class BodyCut {
  /** The cutting fault (its kind says how the adapter cuts, its bytes where). */
  readonly fault: ConnectionFault;
  #sent = 0;
  #done = false;

  constructor(fault: ConnectionFault) {
    this.fault = fault;
  }

  /** The body bytes let through so far: at most the fault's size. */
  get sent(): number {
    return this.#sent;
  }

  /** Whether the last piece was given: the cut is due, nothing more is written. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * What of `chunk` to write, as bytes (a string counts as its UTF-8). All of it
   * while the body stays under the size and more may follow. Else, when the chunk
   * reaches the size or is the `last`, at most what is left of the size: the cut is
   * then done, even when the whole body fitted (a body no longer than the size goes
   * whole, then the cut all the same). Null once the cut is done.
   */
  take(chunk: string | Uint8Array, last: boolean): Uint8Array | null {
    if (this.#done) return null;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const room = this.fault.bytes - this.#sent;
    if (bytes.length < room && !last) {
      this.#sent += bytes.length;
      return bytes;
    }
    const piece = bytes.subarray(0, Math.min(room, bytes.length));
    this.#sent += piece.length;
    this.#done = true;
    return piece;
  }
}
