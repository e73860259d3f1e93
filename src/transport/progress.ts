// No-progress closing. A connection's idle timer restarts on any traffic, so a peer
// that never reads its answer (an HTTP/1.1 reader that stops, an HTTP/2 peer that
// grants no flow-control window) but keeps sending something (PINGs, a byte of a
// next request) would hold its answer, its memory and its slot of the in-flight
// budget for ever. Progress here is the answer's bytes actually leaving the server,
// never bytes received: whatever waits to be sent and has not moved for
// --idle-timeout is closed.

/** What a watched writer reports: bytes waiting to be sent, and a count that grows whenever some left. */
export interface Progress {
  pending: number;
  sent: number;
}

interface Watched {
  measure: () => Progress;
  stalled: () => void;
  pending: number;
  sent: number;
  /** performance.now() of the last progress (or of nothing waiting). */
  since: number;
}

export interface ProgressWatch {
  /** Watches until the returned function is called; `stalled` runs once, when bytes waited `--idle-timeout` without moving. */
  watch(measure: () => Progress, stalled: () => void): () => void;
  stop(): void;
}

/**
 * One sweep for every watched writer (a few calls each, a few times per timeout)
 * rather than a timer each. `ms` 0 watches nothing.
 */
export function createProgressWatch(ms: number): ProgressWatch {
  const watched = new Set<Watched>();
  let timer: NodeJS.Timeout | null = null;
  const every = Math.max(50, Math.min(5000, Math.floor(ms / 4)));
  const sweep = () => {
    const now = performance.now();
    for (const w of watched) {
      const { pending, sent } = w.measure();
      if (pending === 0 || sent !== w.sent || pending < w.pending) w.since = now;
      w.pending = pending;
      w.sent = sent;
      if (now - w.since >= ms) {
        watched.delete(w);
        w.stalled();
      }
    }
    if (watched.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
  return {
    watch(measure, stalled) {
      if (ms === 0) return () => {};
      const first = measure();
      const w: Watched = { measure, stalled, pending: first.pending, sent: first.sent, since: performance.now() };
      watched.add(w);
      if (timer === null) {
        timer = setInterval(sweep, every);
        timer.unref();
      }
      return () => {
        watched.delete(w);
      };
    },
    stop() {
      watched.clear();
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
  };
}

/** A socket's progress: bytes whose write completed (handed to the kernel) grow; what is still queued waits. */
export function socketProgress(socket: { bytesWritten: number; writableLength: number }): Progress {
  return { pending: socket.writableLength, sent: socket.bytesWritten - socket.writableLength };
}
