// Structured logs with pino: one JSON object per line, or a readable text line for
// people at a terminal. The destination is injected so tests read real log lines.
import { Writable } from 'node:stream';
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogFormat, LogLevel } from './config.ts';

export type { Logger };

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go; standard output by default. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base: DestinationStream = (opts.destination as DestinationStream | undefined) ?? pino.destination({ dest: 1, sync: false });
  const dest = opts.format === 'text' ? textStream(base) : base;
  return pino({
    level: opts.level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, dest);
}

/** Re-format pino's JSON lines as `time LEVEL msg key=value ...`. */
function textStream(out: DestinationStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        const { time, level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
        const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && !/[\s"=]/.test(v) ? v : JSON.stringify(v)}`);
        out.write(`${String(time)} ${String(level).toUpperCase()} ${typeof msg === 'string' ? msg : ''}${fields.length ? ' ' + fields.join(' ') : ''}\n`);
      }
      done();
    },
  });
}
