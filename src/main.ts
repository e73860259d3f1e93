#!/usr/bin/env node
// The echo-server binary: wires the CLI to the real process.
import { main } from './cli.ts';

main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal(handler) {
    process.on('SIGTERM', () => handler('SIGTERM'));
    process.on('SIGINT', () => handler('SIGINT'));
  },
}).then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
