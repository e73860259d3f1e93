#!/usr/bin/env node
// The echo-server binary: wires the CLI to the real process.
import { main } from './cli.ts';

const code = await main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  onSignal(handler) {
    process.on('SIGTERM', () => handler('SIGTERM'));
    process.on('SIGINT', () => handler('SIGINT'));
  },
});
process.exit(code);
