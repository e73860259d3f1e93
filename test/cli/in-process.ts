// The CLI run in-process exactly as the binary runs it, with its I/O captured. An
// accepted configuration starts a real server on loopback, stopped through the
// signal handler once `onServing` (if any) is done with it.
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.ts';

export interface CliRun {
  /** The exit status; a server that started and was stopped exits 0. */
  code: number;
  /** Whether a server started (the configuration was accepted). */
  served: boolean;
  out: string;
  err: string;
  /** The log lines, parsed. */
  logs: Record<string, unknown>[];
  /** The configuration the server started with (its startup line), when it started. */
  config?: Record<string, unknown>;
}

export async function runCli(
  argv: string[],
  env: Record<string, string> = {},
  onServing?: (url: string) => Promise<void>,
): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const log = new PassThrough();
  let out = '';
  let err = '';
  let logText = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  log.on('data', (c: Buffer) => {
    logText += c.toString();
  });
  let stop: ((signal: string) => void) | undefined;
  let served = false;
  const code = await main(argv, {
    env,
    stdout,
    stderr,
    logDestination: log,
    onSignal: (handler) => {
      stop = handler;
    },
    onListening: (url) => {
      served = true;
      // After the current tick: main() installs its signal handler right after listening.
      setImmediate(() => {
        void (onServing?.(url) ?? Promise.resolve()).finally(() => stop?.('SIGTERM'));
      });
    },
  });
  const logs = logText
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const started = logs.find((l) => l.msg === 'echo-server started');
  return { code, served, out, err, logs, ...(started ? { config: started.config as Record<string, unknown> } : {}) };
}
