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
/** Linux's PIPE_BUF: the largest write to a pipe that is never split. */
const PIPE_BUF = 4096;

type Done = (err: NodeJS.ErrnoException | null | undefined) => void;

/** One asynchronous write of a batch; `done` runs once the batch is written or failed. */
type Writer = (text: string, done: Done) => void;

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
    return (text, done) => {
      if (failed !== null || socket.destroyed) {
        done(failed ?? Object.assign(new Error('log stream closed'), { code: 'EPIPE' }));
        return;
      }
      if (!shared || Buffer.byteLength(text) <= PIPE_BUF) {
        socket.write(text, (err) => done(err ?? failed));
        return;
      }
      // --workers: several processes write to one pipe. A write of at most PIPE_BUF
      // bytes to a pipe is atomic, so batches go out in pieces of whole lines within
      // that size, and lines from different workers never interleave mid-line (a
      // single line longer than PIPE_BUF cannot be kept whole).
      const pieces: string[] = [];
      let piece = '';
      let bytes = 0;
      for (let from = 0; from < text.length;) {
        const nl = text.indexOf('\n', from);
        const to = nl < 0 ? text.length : nl + 1;
        const line = text.slice(from, to);
        const n = Buffer.byteLength(line);
        if (bytes + n > PIPE_BUF && piece !== '') {
          pieces.push(piece);
          piece = '';
          bytes = 0;
        }
        piece += line;
        bytes += n;
        from = to;
      }
      if (piece !== '') pieces.push(piece);
      pieces.forEach((p, i) => socket.write(p, i === pieces.length - 1 ? (err) => done(err ?? failed) : undefined));
    };
  }
  return (text, done) => {
    const buf = Buffer.from(text);
    const writeFrom = (offset: number) => {
      fsWrite(fd, buf, offset, buf.length - offset, null, (err, n) => {
        if (err) done(err);
        else if (offset + n < buf.length) writeFrom(offset + n);
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
  #pending = '';
  #pendingLines = 0;
  #inFlight = 0;
  #scheduled = false;
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
    if (this.#pending.length + this.#inFlight + text.length > this.#limit) {
      this.#drop(countLines(text), 'the log destination is not keeping up');
      return false;
    }
    this.#pending += text;
    this.#pendingLines += countLines(text);
    if (!this.#scheduled && this.#inFlight === 0) {
      // Lines written in the same turn of the event loop go out as one write.
      this.#scheduled = true;
      setImmediate(() => this.#send());
    }
    return true;
  }

  /** Calls back once everything accepted so far has been written (or dropped). */
  flush(cb?: (err?: Error) => void): void {
    if (cb === undefined) return;
    if (this.#pending === '' && this.#inFlight === 0) cb();
    else this.#flushWaiters.push(() => cb());
  }

  #send(): void {
    this.#scheduled = false;
    if (this.#inFlight > 0 || this.#pending === '') {
      this.#settle();
      return;
    }
    const text = this.#pending;
    const lines = this.#pendingLines;
    this.#pending = '';
    this.#pendingLines = 0;
    this.#inFlight = text.length;
    this.#write(text, (err) => {
      this.#inFlight = 0;
      if (err && (err.code === 'EAGAIN' || err.code === 'EWOULDBLOCK')) {
        // Not written at all: put it back in front and try again a little later.
        this.#pending = text + this.#pending;
        this.#pendingLines += lines;
        this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 10), 1000);
        this.#scheduled = true;
        setTimeout(() => this.#send(), this.#retryDelay).unref();
        return;
      }
      this.#retryDelay = 0;
      if (err) this.#drop(lines, `writing the log failed: ${err.code ?? err.message}`);
      if (this.#pending !== '') this.#send();
      else this.#settle();
    });
  }

  #settle(): void {
    if (this.#pending !== '' || this.#inFlight > 0) return;
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
