#!/usr/bin/env -S node --disable-sigusr1
// The echo-server binary: wires the CLI to the real process.
import { SIGNALS, main } from './cli.ts';

main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal(handler) {
    // Every catchable signal a process manager or terminal sends gets a handler:
    // without one, SIGHUP, SIGQUIT and SIGUSR2 would end the process on the spot.
    // SIGUSR1 would open Node's inspector, letting any process in the network
    // namespace run code here: every launcher passes --disable-sigusr1, under which
    // Node blocks the signal (so it is not even logged); started without the flag,
    // this handler keeps the inspector closed and logs the signal.
    for (const signal of SIGNALS) process.on(signal, () => handler(signal));
  },
  process: {
    entry: process.argv[1]!,
    nodeArgs: process.execArgv,
    // Same PID (PID 1 in a container stays PID 1), same descriptors; nothing is listening yet.
    relaunch: (nodeArgs) =>
      process.execve!(
        process.execPath,
        [process.execPath, ...nodeArgs, ...process.execArgv, ...process.argv.slice(1)],
        process.env,
      ),
  },
}).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
