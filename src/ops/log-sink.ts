// Where log lines go: a file descriptor (standard output by default) written
// without ever blocking the event loop. A log driver that stops reading, a reader
// that went away, or a full disk must cost log lines, never requests: lines wait in
// one bounded buffer, one write is in flight at a time, and when the buffer is full
// new lines are dropped and counted. Drops are reported on standard error at most
// once per REPORT_INTERVAL_MS, through a sink of the same kind.
import { fstatSync, write as fsWrite } from 'node:fs';
import { Socket } from 'node:net';

/** Bytes of log lines waiting for the destination (in flight included), at most. */
export const LOG_BUFFER_LIMIT = 1024 * 1024;
const REPORT_INTERVAL_MS = 10_000;
/** How long lines wait to be written together, at most, unless BATCH_BYTES of them wait. */
const BATCH_MS = 2;
const BATCH_BYTES = 64 * 1024;
/** Linux's PIPE_BUF: the largest write to a pipe that is never split. */
const PIPE_BUF = 4096;

type Done = (err: NodeJS.ErrnoException | null | undefined) => void;

/** One asynchronous write of `len` bytes of `buf`; `done` runs once they are written or failed. The bytes stay untouched until then. */
type Writer = (buf: Buffer, len: number, done: Done) => void;

/**
 * Pipes and sockets are written through the event loop (a libuv stream, never the
 * thread pool): a write to a pipe nobody reads then waits without holding a thread,
 * and the process can still exit. Files, terminals and devices such as /dev/full are
 * written with fs.write, which returns (or fails) promptly for them.
 */
function writerFor(fd: number): Writer {
  let kind: 'stream' | 'fd' = 'fd';
  try {
    const st = fstatSync(fd);
    if (st.isFIFO() || st.isSocket()) kind = 'stream';
  } catch {
    // A closed descriptor: every write fails with EBADF and is counted as dropped.
  }
  if (kind === 'stream') {
    const shared = process.env.ECHO_WORKER_ID !== undefined;
    const socket = new Socket({ fd, readable: false, writable: true });
    socket.unref(); // pending log lines must not keep a finished process alive
    let failed: NodeJS.ErrnoException | null = null;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      failed = err;
    });
    return (buf, len, done) => {
      if (failed !== null || socket.destroyed) {
        done(failed ?? Object.assign(new Error('log stream closed'), { code: 'EPIPE' }));
        return;
      }
      if (!shared || len <= PIPE_BUF) {
        socket.write(buf.subarray(0, len), (err) => done(err ?? failed));
        return;
      }
      // --workers: several processes write to one pipe. A write of at most PIPE_BUF
      // bytes to a pipe is atomic, so batches go out in pieces of whole lines within
      // that size, and lines from different workers never interleave mid-line (a
      // single line longer than PIPE_BUF cannot be kept whole).
      for (let from = 0; from < len;) {
        let to = len;
        if (to - from > PIPE_BUF) {
          const nl = buf.lastIndexOf(0x0a, from + PIPE_BUF - 1);
          to = nl >= from ? nl + 1 : Math.min(len, buf.indexOf(0x0a, from) + 1 || len);
        }
        socket.write(buf.subarray(from, to), to >= len ? (err) => done(err ?? failed) : undefined);
        from = to;
      }
    };
  }
  return (buf, len, done) => {
    const writeFrom = (offset: number) => {
      fsWrite(fd, buf, offset, len - offset, null, (err, n) => {
        if (err) done(err);
        else if (offset + n < len) writeFrom(offset + n);
        else done(null);
      });
    };
    writeFrom(0);
  };
}

export interface LogSinkOptions {
  limit?: number;
  /** Where drops are reported; null for none (the reporter itself). */
  reporter?: LogSink | null;
}

export class LogSink {
  readonly #write: Writer;
  readonly #limit: number;
  readonly #reporter: LogSink | null;
  /**
   * Lines accepted and not yet handed to a write, encoded once on arrival into this
   * buffer: no array of strings to keep, and a batch is already the bytes it writes.
   */
  #pending: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES * 2);
  #pendingBytes = 0;
  #pendingLines = 0;
  /** The other buffer: free for the next batch, or (null) the one a write holds, untouched until it completes. */
  #spare: Buffer | null = Buffer.allocUnsafeSlow(BATCH_BYTES * 2);
  /** Bytes of the write in flight. */
  #inFlight = 0;
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #retryDelay = 0;
  #dropped = 0;
  #reportedDropped = 0;
  #lastReport = 0;
  #lastError = '';
  #flushWaiters: (() => void)[] = [];

  constructor(fd: number, opts: LogSinkOptions = {}) {
    this.#write = writerFor(fd);
    this.#limit = opts.limit ?? LOG_BUFFER_LIMIT;
    this.#reporter = opts.reporter ?? null;
  }

  /** Lines dropped since start: the destination was too slow, gone or full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Takes one or more complete lines. Never blocks; returns false when they were dropped. */
  write(text: string): boolean {
    return this.#accept(text, countLines(text), false);
  }

  /**
   * Takes exactly one complete line (the access log's hot path: no line count to scan
   * for). With `ascii` the caller vouches that every character is ASCII, and the line
   * is copied byte for byte instead of being encoded.
   */
  writeLine(line: string, ascii: boolean): boolean {
    return this.#accept(line, 1, ascii);
  }

  #accept(text: string, lines: number, ascii: boolean): boolean {
    const used = this.#pendingBytes + this.#inFlight;
    // A line never has fewer bytes than UTF-16 units: too long by length is too long.
    if (used + text.length > this.#limit) {
      this.#drop(lines, 'the log destination is not keeping up');
      return false;
    }
    const worst = ascii ? text.length : text.length * 3;
    if (this.#pending.length - this.#pendingBytes < worst) this.#grow(worst);
    const at = this.#pendingBytes;
    const n = this.#pending.write(text, at, ascii ? 'latin1' : 'utf8');
    if (used + n > this.#limit) {
      // the bytes just written past the end are simply not counted
      this.#drop(lines, 'the log destination is not keeping up');
      return false;
    }
    this.#pendingBytes = at + n;
    this.#pendingLines += lines;
    this.#schedule();
    return true;
  }

  /** Room for `more` bytes after the pending ones; what is pending moves along. */
  #grow(more: number): void {
    const next = Buffer.allocUnsafeSlow(Math.max(this.#pending.length * 2, this.#pendingBytes + more));
    this.#pending.copy(next, 0, 0, this.#pendingBytes);
    this.#pending = next;
  }

  /**
   * Lines are gathered for BATCH_MS (or until BATCH_BYTES wait) and go out as one
   * write: under load a write per event-loop turn cost a thread-pool round trip
   * every few requests (measured: about a tenth of a small request's CPU, pinned).
   */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight > 0 || this.#pendingBytes === 0) return;
    this.#scheduled = true;
    if (this.#pendingBytes >= BATCH_BYTES) setImmediate(() => this.#send());
    else this.#timer = setTimeout(() => this.#send(), BATCH_MS);
  }

  /** Calls back once everything accepted so far has been written (or dropped). */
  flush(cb?: (err?: Error) => void): void {
    if (cb === undefined) return;
    if (this.#pendingBytes === 0 && this.#inFlight === 0) {
      cb();
      return;
    }
    this.#flushWaiters.push(() => cb());
    if (this.#timer !== undefined && this.#inFlight === 0) this.#send(); // no reason to wait for the batch
  }

  #send(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#scheduled = false;
    if (this.#inFlight > 0 || this.#pendingBytes === 0) {
      this.#settle();
      return;
    }
    const buf = this.#pending;
    const len = this.#pendingBytes;
    const lines = this.#pendingLines;
    // The write keeps `buf`; new lines go to the other buffer meanwhile.
    this.#pending = this.#spare!;
    this.#spare = null;
    this.#pendingBytes = 0;
    this.#pendingLines = 0;
    this.#inFlight = len;
    this.#write(buf, len, (err) => {
      this.#inFlight = 0;
      if (err && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) {
        // Not written at all: those bytes go back in front of the lines that came since,
        // and are tried again a little later.
        this.#requeue(buf, len, lines);
        this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 10), 1000);
        this.#scheduled = true;
        setTimeout(() => this.#send(), this.#retryDelay).unref();
        return;
      }
      // A buffer grown by a burst is let go once writes are small again.
      this.#spare = buf.length > 8 * BATCH_BYTES && len < BATCH_BYTES ? Buffer.allocUnsafeSlow(BATCH_BYTES * 2) : buf;
      this.#retryDelay = 0;
      if (err) this.#drop(lines, `writing the log failed: ${err.code ?? err.message}`);
      if (this.#pendingBytes !== 0) this.#schedule();
      else this.#settle();
    });
  }

  /** `len` unwritten bytes of `buf` become the start of the pending lines again. */
  #requeue(buf: Buffer, len: number, lines: number): void {
    const total = len + this.#pendingBytes;
    const into = buf.length >= total ? buf : Buffer.allocUnsafeSlow(total * 2);
    if (into !== buf) buf.copy(into, 0, 0, len);
    this.#pending.copy(into, len, 0, this.#pendingBytes);
    this.#spare = this.#pending;
    this.#pending = into;
    this.#pendingBytes = total;
    this.#pendingLines += lines;
  }

  #settle(): void {
    if (this.#pendingBytes !== 0 || this.#inFlight > 0) return;
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const w of waiters) w();
  }

  #drop(lines: number, why: string): void {
    this.#dropped += lines;
    this.#lastError = why;
    const now = Date.now();
    if (this.#reporter === null || now - this.#lastReport < REPORT_INTERVAL_MS) return;
    this.#lastReport = now;
    const n = this.#dropped - this.#reportedDropped;
    this.#reportedDropped = this.#dropped;
    this.#reporter.write(`echo-server: ${n} log line(s) dropped: ${this.#lastError} (total ${this.#dropped})\n`);
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n === 0 ? 1 : n;
}
