// The L4 echoes against the least Node can do: a bare node:net echo (socket.pipe)
// and a bare node:dgram echo (send back what came). Each server is pinned to CPU 0
// (taskset, when there are 2 or more CPUs), the load generator runs in this process
// on CPU 1, in interleaved rounds; medians are printed as Markdown tables and
// written to bench/results/l4.md, the figures to bench/results/l4.json (which
// `npm run bench` reads for its targets). Throughput rows give MB/s or datagrams/s
// and the server's CPU (user + system from /proc) per MB or per datagram; round-trip
// rows give p50/p99 of one request at a time (a 64-byte ping-pong on one TCP
// connection, a 64-byte datagram and its answer) and CPU per round trip. Only ratios
// within one run mean anything: the machine is shared.
//
//   node bench/l4.ts            (about 2 minutes; BENCH_ROUNDS, BENCH_SECONDS (or BENCH_DURATION) to change,
//                                BENCH_L4_ONLY=<part of a scenario's name> for some rows)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? process.env.BENCH_DURATION ?? 4);
const PINNED = cpus().length >= 2 && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
const NODE = process.execPath;
/** The production bundle, as the image runs it (and as the HTTP and gRPC rows measure it). */
const BUNDLE = process.env.BENCH_BUNDLE ?? 'dist/echo-server.cjs';
/** The payload of one round trip: small, so the figure is the per-message cost, not copying. */
const PING = 64;
/** Marks the sequence number in a round-trip datagram. */
const SEQ = Buffer.from('seq ');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function start(args: string[]): ChildProcess {
  const argv = PINNED ? ['taskset', '-c', '0', NODE, ...args] : [NODE, ...args];
  // taskset execs node: the child's pid is the server's, whose CPU time /proc gives.
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** User + system CPU time of one process, in µs (USER_HZ is 100 on Linux). */
function cpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return 0;
  }
}

async function waitTcp(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One measured window: the figure, the server's CPU over it, and what that CPU is divided by. */
interface Measurement {
  /** MB/s, datagrams/s or round trips/s. */
  rate: number;
  /** Server CPU µs per MB, per datagram or per round trip. */
  cpu: number;
  /** Round trips only: latency quantiles in µs. */
  p50?: number;
  p99?: number;
}

/**
 * A warm-up, then `seconds` of counting: how many `count()` grew by, per second, and
 * the server's CPU time over the same window. `onStart` runs as the window opens.
 */
async function measured(
  pid: number,
  seconds: number,
  count: () => number,
  onStart: () => void = () => {},
): Promise<{ perSecond: number; cpu: number; n: number }> {
  await sleep(300);
  onStart();
  const n0 = count();
  const c0 = cpuUs(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const n = count() - n0;
  const cpu = cpuUs(pid) - c0;
  const elapsed = (performance.now() - t0) / 1000;
  return { perSecond: n / elapsed, cpu, n };
}

/**
 * MB/s through `conns` connections, each keeping 1 MiB in flight. A connection the
 * server ends (the default --tcp-max-bytes of 1 GiB is reached in about a second at
 * these rates) is dialled again at once, as a load generator would: the row then
 * counts the cap's reconnects instead of a silent connection.
 */
async function tcpRate(port: number, pid: number, conns: number, seconds: number): Promise<Measurement> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let received = 0;
  let stopped = false;
  const open = new Set<ReturnType<typeof connect>>();
  const dial = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => resolve());
      open.add(s);
      let sent = 0;
      let got = 0;
      const pump = () => {
        while (sent - got < 1024 * 1024) {
          sent += chunk.length;
          if (!s.write(chunk)) break;
        }
      };
      s.on('data', (c: Buffer) => {
        got += c.length;
        received += c.length;
        pump();
      });
      s.on('drain', pump);
      s.on('error', () => {});
      s.once('connect', pump);
      s.once('close', () => {
        open.delete(s);
        if (!stopped) void dial();
      });
    });
  await Promise.all(Array.from({ length: conns }, dial));
  const w = await measured(pid, seconds, () => received);
  stopped = true;
  for (const s of open) s.destroy();
  const mb = w.n / 1e6;
  return { rate: w.perSecond / 1e6, cpu: mb > 0 ? w.cpu / mb : 0 };
}

/** Datagrams/s answered with `flights` 64-byte datagrams outstanding (a lost one is resent after 100 ms). */
async function udpRate(port: number, pid: number, flights: number, seconds: number): Promise<Measurement> {
  const msg = Buffer.alloc(64, 'u');
  let answered = 0;
  let running = true;
  const socks = Array.from({ length: flights }, () => {
    const u = createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    const fire = () => {
      if (!running) return;
      clearTimeout(timer);
      timer = setTimeout(fire, 100);
      u.send(msg, port, '127.0.0.1');
    };
    u.on('message', () => {
      answered++;
      fire();
    });
    u.on('error', () => {});
    return {
      fire,
      stop: () => {
        clearTimeout(timer);
        u.close();
      },
    };
  });
  for (const s of socks) s.fire();
  const w = await measured(pid, seconds, () => answered);
  running = false;
  for (const s of socks) s.stop();
  return { rate: w.perSecond, cpu: w.n > 0 ? w.cpu / w.n : 0 };
}

/** Quantile of sorted µs samples. */
const at = (xs: number[], q: number) => (xs.length === 0 ? 0 : xs[Math.min(xs.length - 1, Math.floor(xs.length * q))]!);

/** Round trips of PING bytes, one at a time, on one TCP connection: each waits for its whole echo. */
async function tcpRoundTrips(port: number, pid: number, seconds: number): Promise<Measurement> {
  const msg = Buffer.alloc(PING, 'p');
  const samples: number[] = [];
  let recording = false;
  let trips = 0;
  const s = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  s.on('error', () => {});
  let got = 0;
  let sentAt = 0;
  const send = () => {
    got = 0;
    sentAt = performance.now();
    s.write(msg);
  };
  s.on('data', (c: Buffer) => {
    got += c.length;
    if (got < PING) return;
    trips++;
    if (recording) samples.push((performance.now() - sentAt) * 1000);
    send();
  });
  await new Promise<void>((resolve) => s.once('connect', resolve));
  send();
  const w = await measured(
    pid,
    seconds,
    () => trips,
    () => (recording = true),
  );
  recording = false;
  s.destroy();
  samples.sort((a, b) => a - b);
  return { rate: w.perSecond, cpu: w.n > 0 ? w.cpu / w.n : 0, p50: at(samples, 0.5), p99: at(samples, 0.99) };
}

/**
 * A PING-byte datagram and its answer, one at a time; a lost one is resent after
 * 100 ms and its time counts from the first send. Each datagram carries its sequence
 * number in ASCII, so a late answer to a resent datagram that returns it (the exact
 * bytes, or an envelope with the payload) is not taken for the next one's.
 */
async function udpRoundTrips(port: number, pid: number, seconds: number): Promise<Measurement> {
  const samples: number[] = [];
  let recording = false;
  let running = true;
  let trips = 0;
  let seq = 0;
  let tag = Buffer.alloc(0);
  let msg = Buffer.alloc(0);
  const u = createSocket('udp4');
  u.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  let firstSentAt = 0;
  const resend = () => {
    if (!running) return;
    timer = setTimeout(resend, 100);
    u.send(msg, port, '127.0.0.1');
  };
  const send = () => {
    tag = Buffer.concat([SEQ, Buffer.from(`${++seq};`)]);
    msg = Buffer.concat([tag, Buffer.alloc(PING - tag.length, 'q')]);
    firstSentAt = performance.now();
    resend();
  };
  u.on('message', (answer: Buffer) => {
    // An answer naming another sequence number is late; one naming none (an envelope without its payload) is taken.
    if (!answer.includes(tag) && answer.includes(SEQ)) return;
    clearTimeout(timer);
    trips++;
    if (recording) samples.push((performance.now() - firstSentAt) * 1000);
    send();
  });
  send();
  const w = await measured(
    pid,
    seconds,
    () => trips,
    () => (recording = true),
  );
  recording = false;
  running = false;
  clearTimeout(timer);
  u.close();
  samples.sort((a, b) => a - b);
  return { rate: w.perSecond, cpu: w.n > 0 ? w.cpu / w.n : 0, p50: at(samples, 0.5), p99: at(samples, 0.99) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One row of bench/results/l4.json: medians over the rounds, echo-server and the bare echo. */
export interface L4Row {
  name: string;
  protocol: 'tcp' | 'udp';
  /** `rate`: throughput (MB/s, datagrams/s); `roundtrip`: one message at a time, with p50/p99. */
  kind: 'rate' | 'roundtrip';
  unit: string;
  /** What CPU µs are per: MB, datagram or round trip. */
  cpuPer: string;
  echo: Measurement;
  bare: Measurement;
}

interface L4Scenario {
  name: string;
  protocol: 'tcp' | 'udp';
  kind: 'rate' | 'roundtrip';
  unit: string;
  cpuPer: string;
  run: (port: number, pid: number) => Promise<Measurement>;
  /** echo-server's flags beyond the listener. */
  echo: string[];
}

function aggregate(xs: Measurement[]): Measurement {
  const m: Measurement = { rate: median(xs.map((x) => x.rate)), cpu: median(xs.map((x) => x.cpu)) };
  if (xs[0]?.p50 !== undefined) {
    m.p50 = median(xs.map((x) => x.p50!));
    m.p99 = median(xs.map((x) => x.p99!));
  }
  return m;
}

async function main(): Promise<void> {
  if (process.env.BENCH_BUNDLE === undefined) execFileSync(NODE, ['scripts/build.ts'], { stdio: 'inherit' });
  if (PINNED) execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  const before = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const tcp = { protocol: 'tcp' as const, echo: ['--tcp-banner', 'false'] };
  const rate = { kind: 'rate' as const };
  const trip = { kind: 'roundtrip' as const, unit: 'round trips/s', cpuPer: 'round trip' };
  const envelope = { protocol: 'udp' as const, echo: ['--udp-mode', 'envelope'] };
  const echoMode = { protocol: 'udp' as const, echo: ['--udp-mode', 'echo'] };
  const scenarios: L4Scenario[] = [
    {
      name: 'TCP echo, 4 connections, 64 KiB writes',
      ...tcp,
      ...rate,
      unit: 'MB/s',
      cpuPer: 'MB',
      run: (p, pid) => tcpRate(p, pid, 4, SECONDS),
    },
    {
      name: 'TCP echo, 1 connection, 64 KiB writes',
      ...tcp,
      ...rate,
      unit: 'MB/s',
      cpuPer: 'MB',
      run: (p, pid) => tcpRate(p, pid, 1, SECONDS),
    },
    {
      name: 'UDP, 64-byte datagrams, 32 in flight, --udp-mode envelope',
      ...envelope,
      ...rate,
      unit: 'datagrams/s',
      cpuPer: 'datagram',
      run: (p, pid) => udpRate(p, pid, 32, SECONDS),
    },
    {
      name: 'UDP, 64-byte datagrams, 32 in flight, --udp-mode echo',
      ...echoMode,
      ...rate,
      unit: 'datagrams/s',
      cpuPer: 'datagram',
      run: (p, pid) => udpRate(p, pid, 32, SECONDS),
    },
    {
      name: `TCP ping-pong, 1 connection, ${PING} bytes`,
      ...tcp,
      ...trip,
      run: (p, pid) => tcpRoundTrips(p, pid, SECONDS),
    },
    {
      name: `UDP request and answer, ${PING} bytes, --udp-mode envelope`,
      ...envelope,
      ...trip,
      run: (p, pid) => udpRoundTrips(p, pid, SECONDS),
    },
    {
      name: `UDP request and answer, ${PING} bytes, --udp-mode echo`,
      ...echoMode,
      ...trip,
      run: (p, pid) => udpRoundTrips(p, pid, SECONDS),
    },
  ];
  const rows: L4Row[] = [];
  const only = process.env.BENCH_L4_ONLY;
  for (const sc of scenarios.filter((x) => only === undefined || x.name.includes(only))) {
    const port = await freePort();
    const http = await freePort();
    const l4 =
      sc.protocol === 'tcp'
        ? ['--tcp-port', String(port)]
        : ['--udp-port', String(port), '--udp-rate-per-source', '1000000', '--udp-max-pps', '10000000'];
    // The access log goes nowhere (stdout ignored is still written): the figure is the echo's.
    const echoArgs = ['--disable-sigusr1', BUNDLE, '--host', '127.0.0.1', '--port', String(http), ...l4, ...sc.echo];
    const results = { echo: [] as Measurement[], bare: [] as Measurement[] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const which of ['bare', 'echo'] as const) {
        const child = start(which === 'echo' ? echoArgs : [import.meta.filename, 'bare', sc.protocol, String(port)]);
        // A server that never comes up, or a load that fails, must not leave it running.
        try {
          if (which === 'echo') await waitTcp(http);
          else if (sc.protocol === 'tcp') await waitTcp(port);
          else await sleep(500); // the bare UDP echo has no TCP port to wait on
          results[which].push(await sc.run(port, child.pid!));
        } finally {
          child.kill('SIGKILL');
          await new Promise((r) => child.once('exit', r));
        }
      }
    }
    const row: L4Row = {
      name: sc.name,
      protocol: sc.protocol,
      kind: sc.kind,
      unit: sc.unit,
      cpuPer: sc.cpuPer,
      echo: aggregate(results.echo),
      bare: aggregate(results.bare),
    };
    rows.push(row);
    console.log(
      `  ${row.name}: ${fmt(row, row.echo.rate)} vs bare ${fmt(row, row.bare.rate)} ${row.unit} (${ratio(row.echo.rate, row.bare.rate)}), ` +
        `CPU ${row.echo.cpu.toFixed(1)} vs ${row.bare.cpu.toFixed(1)} µs/${row.cpuPer}` +
        (row.echo.p99 === undefined ? '' : `, p99 ${row.echo.p99.toFixed(0)} vs ${row.bare.p99!.toFixed(0)} µs`),
    );
  }
  const after = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const date = new Date().toISOString();
  const head = `Measured ${date.slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${PINNED ? 'each server pinned to CPU 0, the load on CPU 1' : 'unpinned'}; ${ROUNDS} interleaved rounds of ${SECONDS} s (medians); load average ${before} before, ${after} after. echo-server runs its production bundle with default settings (access log on, to a discarded stdout), rate limits raised for the UDP rows; the bare echoes are socket.pipe(socket) and a dgram send-back. CPU is user + system time of the server process (from /proc); values in parentheses are the bare echo's.`;
  const md = `${head}\n\n${markdown(rows).join('\n')}\n`;
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/l4.md', md);
  writeFileSync(
    'bench/results/l4.json',
    JSON.stringify({ date, node: process.version, pinned: PINNED, rounds: ROUNDS, seconds: SECONDS, rows }, null, 2) +
      '\n',
  );
  console.log(`\n${md}`);
}

const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '-' : (a / b).toFixed(2);
const fmt = (row: L4Row, v: number) => (row.unit === 'MB/s' ? v.toFixed(0) : Math.round(v).toString());

/** Throughput rows, then round-trip rows, as Markdown tables. */
function markdown(rows: L4Row[]): string[] {
  const out = [
    '| scenario | echo-server (bare) | **ratio** | server CPU µs (bare) | CPU ratio |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows.filter((x) => x.kind === 'rate'))
    out.push(
      `| ${r.name} | ${fmt(r, r.echo.rate)} ${r.unit} (${fmt(r, r.bare.rate)}) | **${ratio(r.echo.rate, r.bare.rate)}** | ` +
        `${r.echo.cpu.toFixed(1)} (${r.bare.cpu.toFixed(1)}) per ${r.cpuPer} | ${ratio(r.echo.cpu, r.bare.cpu)} |`,
    );
  out.push(
    '',
    '| round trip, one at a time | p50 µs (bare) | p99 µs (bare) | **p99 ratio** | round trips/s (bare) | ratio | server CPU µs / round trip (bare) | CPU ratio |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const r of rows.filter((x) => x.kind === 'roundtrip'))
    out.push(
      `| ${r.name} | ${r.echo.p50!.toFixed(0)} (${r.bare.p50!.toFixed(0)}) | ${r.echo.p99!.toFixed(0)} (${r.bare.p99!.toFixed(0)}) | **${ratio(r.echo.p99, r.bare.p99)}** | ` +
        `${fmt(r, r.echo.rate)} (${fmt(r, r.bare.rate)}) | ${ratio(r.echo.rate, r.bare.rate)} | ${r.echo.cpu.toFixed(1)} (${r.bare.cpu.toFixed(1)}) | ${ratio(r.echo.cpu, r.bare.cpu)} |`,
    );
  return out;
}

/** The bare echoes, run as a child with `bare tcp PORT` / `bare udp PORT`. */
if (process.argv[2] === 'bare') {
  const port = Number(process.argv[4]);
  if (process.argv[3] === 'tcp')
    createServer((s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    }).listen(port, '127.0.0.1');
  else {
    const u = createSocket('udp4');
    u.on('message', (m, r) => u.send(m, r.port, r.address));
    u.bind(port, '127.0.0.1');
  }
} else {
  await main();
}
