// Where log lines go: a file descriptor (standard output by default) written
// without ever blocking the event loop. A log driver that stops reading, a reader
// that went away, or a full disk must cost log lines, never requests: lines wait in
// one bounded buffer, one write is in flight at a time, and when the buffer is full
// new lines are dropped and counted. Drops are reported on standard error at most
// once per REPORT_INTERVAL_MS, through a sink of the same kind.
import { fstatSync, write as fsWrite } from 'node:fs';
import { Socket } from 'node:net';

/** Log lines waiting for the destination, at most (UTF-16 units, about bytes for log text). */
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
    socket.on('error', (err: NodeJS.ErrnoException) => { failed = err; });
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
          to = nl >= from ? nl + 1 : Math.min(len, (buf.indexOf(0x0a, from) + 1) || len);
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
  /** Lines accepted and not yet handed to a write, and their length in UTF-16 units. */
  #parts: string[] = [];
  #pending = 0;
  #pendingLines = 0;
  /** Reused for every write: lines are copied into it once, never concatenated first. */
  #buf = Buffer.allocUnsafeSlow(BATCH_BYTES * 2);
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
    if (this.#pending + this.#inFlight + text.length > this.#limit) {
      this.#drop(countLines(text), 'the log destination is not keeping up');
      return false;
    }
    this.#parts.push(text);
    this.#pending += text.length;
    this.#pendingLines += countLines(text);
    this.#schedule();
    return true;
  }

  /**
   * Lines are gathered for BATCH_MS (or until BATCH_BYTES wait) and go out as one
   * write: under load a write per event-loop turn cost a thread-pool round trip
   * every few requests (measured: about a tenth of a small request's CPU, pinned).
   */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight > 0 || this.#pending === 0) return;
    this.#scheduled = true;
    if (this.#pending >= BATCH_BYTES) setImmediate(() => this.#send());
    else this.#timer = setTimeout(() => this.#send(), BATCH_MS);
  }

  /** Calls back once everything accepted so far has been written (or dropped). */
  flush(cb?: (err?: Error) => void): void {
    if (cb === undefined) return;
    if (this.#pending === 0 && this.#inFlight === 0) {
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
    if (this.#inFlight > 0 || this.#pending === 0) {
      this.#settle();
      return;
    }
    const parts = this.#parts;
    const lines = this.#pendingLines;
    // At most 3 bytes per UTF-16 unit; a buffer grown by a burst shrinks back after it.
    const worst = this.#pending * 3;
    if (this.#buf.length < worst || (this.#buf.length > 8 * BATCH_BYTES && worst < BATCH_BYTES)) {
      this.#buf = Buffer.allocUnsafeSlow(Math.max(worst, BATCH_BYTES * 2));
    }
    const buf = this.#buf;
    let len = 0;
    for (const part of parts) len += buf.write(part, len);
    this.#parts = [];
    this.#inFlight = this.#pending;
    this.#pending = 0;
    this.#pendingLines = 0;
    this.#write(buf, len, (err) => {
      const units = this.#inFlight;
      this.#inFlight = 0;
      if (err && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) {
        // Not written at all: put it back in front and try again a little later.
        this.#parts.unshift(buf.toString('utf8', 0, len));
        this.#pending += units;
        this.#pendingLines += lines;
        this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 10), 1000);
        this.#scheduled = true;
        setTimeout(() => this.#send(), this.#retryDelay).unref();
        return;
      }
      this.#retryDelay = 0;
      if (err) this.#drop(lines, `writing the log failed: ${err.code ?? err.message}`);
      if (this.#pending !== 0) this.#schedule();
      else this.#settle();
    });
  }

  #settle(): void {
    if (this.#pending !== 0 || this.#inFlight > 0) return;
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
