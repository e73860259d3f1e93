// The L4 echoes against the least Node can do: a bare node:net echo (socket.pipe)
// and a bare node:dgram echo (send back what came). Each server is pinned to CPU 0
// (taskset, when there are 2 or more CPUs), the load generator runs in this process
// on CPU 1, in interleaved rounds; medians are printed as a Markdown table and
// written to bench/results/l4.md. Only ratios within one run mean anything: the
// machine is shared.
//
//   node bench/l4.ts            (about 1 minute; BENCH_ROUNDS, BENCH_SECONDS to change)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const PINNED = cpus().length >= 2 && spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
const NODE = process.execPath;

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
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
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

/** MB/s through `conns` connections, each keeping 1 MiB in flight. `banner`: skip the first line. */
async function tcpRate(port: number, conns: number, seconds: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let received = 0;
  let counting = false;
  const sockets = await Promise.all(
    Array.from(
      { length: conns },
      () =>
        new Promise<ReturnType<typeof connect>>((resolve) => {
          const s = connect(port, '127.0.0.1', () => resolve(s));
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
            if (counting) received += c.length;
            pump();
          });
          s.on('drain', pump);
          s.on('error', () => {});
          s.once('connect', pump);
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 300)); // warm up
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  for (const s of sockets) s.destroy();
  return received / elapsed / 1e6;
}

/** Datagrams/s answered with `flights` 64-byte datagrams outstanding (a lost one is resent after 100 ms). */
async function udpRate(port: number, flights: number, seconds: number): Promise<number> {
  const msg = Buffer.alloc(64, 'u');
  let answered = 0;
  let counting = false;
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
      if (counting) answered++;
      fire();
    });
    u.on('error', () => {});
    return {
      u,
      fire,
      stop: () => {
        clearTimeout(timer);
        u.close();
      },
    };
  });
  for (const s of socks) s.fire();
  await new Promise((r) => setTimeout(r, 300));
  counting = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  for (const s of socks) s.stop();
  return answered / elapsed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (PINNED) execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  const before = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const scenarios: {
    name: string;
    unit: string;
    run: (port: number) => Promise<number>;
    echo: string[];
    bare: 'tcp' | 'udp';
  }[] = [
    {
      name: 'TCP echo, 4 connections, 64 KiB writes',
      unit: 'MB/s',
      run: (p) => tcpRate(p, 4, SECONDS),
      echo: ['--tcp-banner', 'false'],
      bare: 'tcp',
    },
    {
      name: 'TCP echo, 1 connection, 64 KiB writes',
      unit: 'MB/s',
      run: (p) => tcpRate(p, 1, SECONDS),
      echo: ['--tcp-banner', 'false'],
      bare: 'tcp',
    },
    {
      name: 'UDP, 64-byte datagrams, 32 in flight, --udp-mode envelope',
      unit: 'datagrams/s',
      run: (p) => udpRate(p, 32, SECONDS),
      echo: ['--udp-mode', 'envelope'],
      bare: 'udp',
    },
    {
      name: 'UDP, 64-byte datagrams, 32 in flight, --udp-mode echo',
      unit: 'datagrams/s',
      run: (p) => udpRate(p, 32, SECONDS),
      echo: ['--udp-mode', 'echo'],
      bare: 'udp',
    },
  ];
  const rows: string[] = [];
  for (const sc of scenarios) {
    const port = await freePort();
    const http = await freePort();
    const l4 =
      sc.bare === 'tcp'
        ? ['--tcp-port', String(port)]
        : ['--udp-port', String(port), '--udp-rate-per-source', '1000000', '--udp-max-pps', '10000000'];
    // The access log goes nowhere (stdout ignored is still written): the figure is the echo's.
    const echoArgs = [
      '--disable-sigusr1',
      'src/main.ts',
      '--host',
      '127.0.0.1',
      '--port',
      String(http),
      ...l4,
      ...sc.echo,
    ];
    const results = { echo: [] as number[], bare: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const which of ['bare', 'echo'] as const) {
        const child = start(which === 'echo' ? echoArgs : [import.meta.filename, 'bare', sc.bare, String(port)]);
        if (which === 'echo') await waitTcp(http);
        else if (sc.bare === 'tcp') await waitTcp(port);
        else await new Promise((r) => setTimeout(r, 500)); // the bare UDP echo has no TCP port to wait on
        results[which].push(await sc.run(port));
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    }
    const e = median(results.echo);
    const b = median(results.bare);
    const fmt = (v: number) => (sc.unit === 'MB/s' ? v.toFixed(0) : Math.round(v).toString());
    rows.push(`| ${sc.name} | ${fmt(e)} ${sc.unit} (bare ${fmt(b)}) | **${(e / b).toFixed(2)}** |`);
    console.log(rows.at(-1));
  }
  const after = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const head = `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${PINNED ? 'each server pinned to CPU 0, the load on CPU 1' : 'unpinned'}; ${ROUNDS} interleaved rounds of ${SECONDS} s (medians); load average ${before} before, ${after} after. echo-server runs src/main.ts with default settings (access log on, to a discarded stdout), rate limits raised for the UDP rows; the bare echoes are socket.pipe(socket) and a dgram send-back.`;
  const table = ['| scenario | echo-server (bare) | ratio |', '|---|---|---|', ...rows].join('\n');
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/l4.md', `${head}\n\n${table}\n`);
  console.log(`\n${head}\n\n${table}`);
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
