// Memory under two hostile loads, measured on the real binary in a child process:
//   1. HTTP/2: SESSIONS sessions x STREAMS delayed streams each, all held at once;
//   2. WebSocket: a client that sends 1 MB messages within the limits and never reads.
// Prints the server's peak RSS for each next to its idle RSS. Bounded in time and
// count; traffic only to 127.0.0.1. Usage: node bench/memory-attacks.ts [--sessions N] [--streams N]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { scriptArgs, usageError } from '../scripts/lib/args.ts';

const { values } = scriptArgs('memory-attacks', {
  options: { sessions: { type: 'string', default: '1000' }, streams: { type: 'string', default: '100' } },
});
const count = (name: 'sessions' | 'streams', max: number): number => {
  const n = Number(values[name]);
  return Number.isInteger(n) && n >= 1 && n <= max
    ? n
    : usageError('memory-attacks', `--${name} must be a whole number from 1 to ${max}`);
};
const SESSIONS = count('sessions', 10_000);
const STREAMS = count('streams', 1000);
const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const child = spawn(
  process.execPath,
  [
    '--disable-sigusr1',
    MAIN,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--no-access-log',
    '--max-delay',
    '20s',
    '--max-in-flight-per-client',
    '1000000',
    '--max-connections-per-client',
    '1000000',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let out = '';
child.stdout.on('data', (c: Buffer) => {
  out += c.toString();
});
while (!out.includes('echo-server started')) await sleep(20);
const url = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[0]!;
const pid = child.pid!;
await sleep(500);
const idle = rss(pid);

// 1. HTTP/2 streams held by a delay.
let peakH2 = idle;
const outcomes = { answered: 0, refused: 0, other: 0 };
const sessions: ClientHttp2Session[] = [];
const done: Promise<void>[] = [];
for (let i = 0; i < SESSIONS; i++) {
  const s = h2connect(url);
  s.on('error', () => {});
  sessions.push(s);
  for (let j = 0; j < STREAMS; j++) {
    const req = s.request({ ':path': `/?echo_delay=8s&s=${i}` });
    req.on('error', () => {});
    req.resume();
    done.push(
      new Promise((resolve) => {
        req.on('response', () => {
          outcomes.answered++;
        });
        req.on('close', () => {
          if (req.rstCode === 7) outcomes.refused++;
          else if (req.rstCode !== 0) outcomes.other++;
          resolve();
        });
      }),
    );
    req.end();
  }
  if (i % 50 === 49) peakH2 = Math.max(peakH2, rss(pid));
}
const sampler = setInterval(() => {
  peakH2 = Math.max(peakH2, rss(pid));
}, 100);
await Promise.race([Promise.all(done), sleep(30_000)]);
clearInterval(sampler);
for (const s of sessions) s.destroy();
console.log(
  `HTTP/2: ${SESSIONS} sessions x ${STREAMS} delayed streams: answered ${outcomes.answered}, refused (REFUSED_STREAM) ${outcomes.refused}, other resets ${outcomes.other}; server RSS idle ${idle.toFixed(0)} MiB, peak ${peakH2.toFixed(0)} MiB`,
);
await sleep(2000);

if (process.env.SKIP_WS) {
  child.kill('SIGTERM');
  await once(child, 'exit');
  process.exit(0);
}
// 2. A WebSocket client that never reads.
const before = rss(pid);
const { port } = new URL(url);
const ws = connect({ port: Number(port), host: '127.0.0.1' });
await once(ws, 'connect');
ws.on('error', () => {});
ws.write(
  'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
);
await once(ws, 'data');
ws.pause();
const payload = Buffer.alloc(1_000_000, 0x61);
const head = Buffer.alloc(14);
head[0] = 0x82;
head[1] = 0x80 | 127;
head.writeBigUInt64BE(BigInt(payload.length), 2);
const frame = Buffer.concat([head, payload]);
let offered = 0;
let peakWs = before;
const until = performance.now() + 16_000;
while (performance.now() < until && !ws.destroyed) {
  if (ws.writableLength === 0) {
    ws.write(frame);
    offered += frame.length;
  }
  peakWs = Math.max(peakWs, rss(pid));
  await sleep(20);
}
ws.destroy();
console.log(
  `WebSocket peer sending 1 MB messages for 16 s without reading: offered ${(offered / 1e6).toFixed(0)} MB; server RSS before ${before.toFixed(0)} MiB, peak ${peakWs.toFixed(0)} MiB (+${(peakWs - before).toFixed(0)} MiB)`,
);

child.kill('SIGTERM');
await once(child, 'exit');
