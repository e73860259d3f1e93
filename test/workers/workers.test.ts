// --workers: the real binary as a child process, observed from outside (its log
// lines, its exit, real HTTP clients on loopback).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { readCgroupLimits, autoWorkers } from '../../src/config/resources.ts';
import { waitFor, waitForInFlight } from '../helpers.ts';
import { MAIN, exitWithin, listeningPorts, spawnMain, until, type Server } from '../hardening/process.ts';

function get(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A new connection each time: the primary (or the kernel) picks a worker per connection.
    const req = request(`${url}${path}`, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function whoAnswers(url: string, n: number): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const { body } = await get(url, '/who', { Accept: 'application/json' });
    seen.add((JSON.parse(body) as { server: { worker: number } }).server.worker);
  }
  return seen;
}

const servers: Server[] = [];
async function start(args: string[]): Promise<{ s: Server; url: string }> {
  const s = spawnMain(['--port', '0', '--host', '127.0.0.1', '--drain-timeout', '5s', ...args]);
  servers.push(s);
  await until(
    () => s.lines.some((l) => l.msg === 'echo-server started') || s.exited,
    30_000,
    'the primary logs "echo-server started"',
  );
  const started = s.lines.find((l) => l.msg === 'echo-server started');
  assert.ok(started, `not started: ${s.stderr()}`);
  return { s, url: (started.listeners as string[])[0]! };
}

const sum = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);

describe('--workers', { timeout: 120_000 }, () => {
  after(() => {
    for (const s of servers) s.kill();
  });

  it('the TCP and UDP echoes are served by every worker, one port each, and /metrics adds them up', async () => {
    const { s, url } = await start(['--workers', '2', '--tcp-port', '0', '--udp-port', '0']);
    const listeners = s.lines.find((l) => l.msg === 'echo-server started')!.listeners as string[];
    const tcp = new URL(listeners.find((u) => u.startsWith('tcp:'))!).port;
    const udp = new URL(listeners.find((u) => u.startsWith('udp:'))!).port;
    const r = spawnSync(
      'python3',
      [
        '-c',
        `
import socket, json
tcp, udp = set(), set()
for i in range(20):
    s = socket.create_connection(('127.0.0.1', ${tcp}))
    tcp.add(json.loads(s.makefile('rb').readline())['identity']['worker'])
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
for i in range(20):
    u.sendto(b'w' * 300, ('127.0.0.1', ${udp}))
    udp.add(json.loads(u.recv(65535))['identity']['worker'])
print(json.dumps({'tcp': sorted(tcp), 'udp': sorted(udp)}))
`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as { tcp: number[]; udp: number[] };
    assert.deepEqual(seen.tcp, [1, 2], 'both workers take TCP echo connections');
    assert.ok(seen.udp.length >= 1);
    await waitFor(
      async () => sum((await get(url, '/metrics')).body, 'echo_tcp_connections_total') === 20,
      5000,
      "every worker's TCP closes in one scrape",
    );
    assert.equal(sum((await get(url, '/metrics')).body, 'echo_udp_datagrams_total{result="answered"}'), 20);
  });

  it('starts N workers behind one port, the echo names the worker, /metrics adds up every worker', async () => {
    const { s, url } = await start(['--workers', '2']);
    const started = s.lines.filter((l) => l.msg === 'echo-server started');
    assert.equal(started.length, 1, 'one startup line, from the primary');
    assert.equal(started[0]!.workers, 2);
    assert.equal(s.lines.filter((l) => l.msg === 'worker started').length, 2);
    const seen = await whoAnswers(url, 20);
    assert.deepEqual([...seen].sort(), [1, 2], 'both workers answer');
    const text = await get(url, '/who');
    assert.match(text.body, /^Worker: [12]$/m);
    // 21 echo answers so far, spread over both workers, all in one scrape (whichever worker takes it).
    const metrics = (await get(url, '/metrics')).body;
    assert.equal(sum(metrics, 'echo_http_requests_total{method="GET",status="200"}'), 21, metrics);
    assert.match(metrics, /^echo_workers 2$/m);
    assert.match(metrics, /^echo_worker_restarts_total 0$/m);
    assert.match(metrics, /^process_resident_memory_bytes \d+/m);
    // Scrapes within about a second share that collection; a later one counts the scrapes before it.
    const later = await waitFor(
      async () => {
        const text = (await get(url, '/metrics')).body;
        return sum(text, 'echo_http_requests_total{method="GET",status="200"}') > 21 ? text : null;
      },
      10_000,
      'a fresh collection',
    );
    assert.match(later, /^echo_workers 2$/m);
    // `echo-server healthcheck` works unchanged against it.
    const port = new URL(url).port;
    const check = spawnMain(['healthcheck', '--port', port, '--host', '127.0.0.1'], { stdout: 'pipe' });
    assert.equal((await check.exit).code, 0);
  });

  it('replaces a worker that dies, logs it, and counts it', async () => {
    const { s, url } = await start(['--workers', '2']);
    const victim = s.lines.find((l) => l.msg === 'worker started' && l.worker === 1)!;
    process.kill(victim.pid as number, 'SIGKILL');
    await until(() => s.lines.some((l) => l.msg === 'worker replaced'), 30_000, 'the replacement is up');
    const died = s.lines.find((l) => l.msg === 'worker died: starting a replacement')!;
    assert.equal(died.worker, 1);
    assert.equal(died.signal, 'SIGKILL');
    assert.equal(died.level, 'error');
    const seen = await whoAnswers(url, 20);
    assert.deepEqual([...seen].sort(), [1, 2]);
    // The primary reuses a collection of figures for about a second: poll, not once.
    const metrics = await waitFor(
      async () => {
        const body = (await get(url, '/metrics')).body;
        return /^echo_worker_restarts_total 1$/m.test(body) ? body : null;
      },
      5000,
      'the restart counted',
      100,
    );
    assert.match(metrics, /^echo_workers 2$/m);
  });

  it('drains every worker on SIGTERM to the primary: requests in flight finish, then all exit 0', async () => {
    const { s, url } = await start(['--workers', '2']);
    const workerPids = s.lines.filter((l) => l.msg === 'worker started').map((l) => l.pid as number);
    // Requests on both workers, held by a delay.
    const held = Array.from({ length: 6 }, () => get(url, '/?echo_delay=1500ms'));
    await waitForInFlight(url, 6); // every worker's gauge, summed by the primary
    s.child.kill('SIGTERM');
    const answers = await Promise.all(held);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200, 200],
    );
    const exit = await exitWithin(s, 15_000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(s.lines.filter((l) => l.msg === 'shutting down: draining').length, 2, 'each worker drained');
    assert.ok(s.lines.some((l) => l.msg === 'shutting down: draining every worker'));
    assert.equal(s.lines.at(-1)!.msg, 'shutdown complete');
    for (const pid of workerPids) assert.throws(() => process.kill(pid, 0), 'worker gone');
  });

  it("keeps every worker's log lines whole on one shared pipe, under a burst of long lines", async () => {
    const { s, url } = await start(['--workers', '2']);
    const before = s.lines.length;
    // Long lines through a long path (logged up to 2048 characters; the user agent is cut at 256).
    const tail = 'x'.repeat(1500);
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 60 }, (_, i) => get(url, `/burst/${round}/${i}/${tail}`)));
    }
    await until(() => s.lines.filter((l) => l.msg === 'request').length >= 300, 10_000, 'every access line arrived');
    const after = s.lines.slice(before);
    assert.ok(
      after.every((l) => typeof l.level === 'string'),
      'every line parsed as a JSON log line',
    );
    assert.equal(
      after.filter((l) => l.msg === 'request' && typeof l.uri === 'string' && l.uri.endsWith(tail)).length,
      300,
    );
  });

  it('balances with SO_REUSEPORT when asked, port 0 included', async () => {
    const { s, url } = await start(['--workers', '2', '--worker-balance', 'reuseport']);
    // Each worker binds the announced port itself: SO_REUSEPORT, no port 0 left anywhere.
    const port = Number(new URL(url).port);
    // Each worker's own line may reach the pipe after the primary's.
    await until(
      () => s.lines.filter((l) => l.msg === 'worker started').length === 2,
      5000,
      'both "worker started" lines',
    );
    const workerPids = s.lines.filter((l) => l.msg === 'worker started').map((l) => l.pid as number);
    assert.equal(workerPids.length, 2);
    for (const pid of workerPids) assert.deepEqual(listeningPorts(pid), [port], `worker ${pid} listens on ${port}`);
    // The kernel spreads connections by a hash of their addresses: many connections reach both.
    const seen = await whoAnswers(url, 40);
    assert.deepEqual([...seen].sort(), [1, 2]);
    s.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(s, 15_000), { code: 0, signal: null });
  });

  it('auto starts one worker per CPU the cgroup allows', async () => {
    const { s } = await start(['--workers', 'auto']);
    const expected = autoWorkers(readCgroupLimits());
    assert.equal(s.lines.find((l) => l.msg === 'echo-server started')!.workers ?? 1, expected);
  });

  it('exits 2 when a worker cannot listen (a busy port), rather than restarting it forever', async () => {
    const { url } = await start([]);
    const port = new URL(url).port;
    const s = spawnMain(['--port', port, '--host', '127.0.0.1', '--workers', '2', '--worker-balance', 'reuseport']);
    servers.push(s);
    const exit = await exitWithin(s, 30_000);
    assert.equal(exit?.code, 2, s.stderr() + JSON.stringify(s.lines));
  });
});

describe('--workers, more', { timeout: 120_000 }, () => {
  after(() => {
    for (const s of servers) s.kill();
  });

  it('drains (does not drop) requests when Ctrl-C reaches the primary and every worker at once', async () => {
    const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--workers', '2'], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(() => out.includes('echo-server started'), 30_000, 'started');
      const url = (
        JSON.parse(out.split('\n').find((l) => l.includes('echo-server started'))!) as { listeners: string[] }
      ).listeners[0]!;
      // Held past the primary's figures cache (about a second), so the scrape that
      // sees all four in flight can come after they all arrived and before any ends.
      const held = Array.from({ length: 4 }, () => get(url, '/?echo_delay=4s'));
      await waitForInFlight(url, 4);
      process.kill(-child.pid!, 'SIGINT'); // the whole process group, as a terminal does
      assert.deepEqual(
        (await Promise.all(held)).map((a) => a.status),
        [200, 200, 200, 200],
      );
      assert.equal(await exit, 0);
      assert.doesNotMatch(out, /second signal/);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });

  it("serves every worker's figures on --metrics-port from the primary", async () => {
    const metricsPort = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    });
    const { url } = await start(['--workers', '2', '--metrics-port', String(metricsPort)]);
    for (let i = 0; i < 10; i++) await get(url, '/x');
    const metrics = (await get(`http://127.0.0.1:${metricsPort}`, '/metrics')).body;
    assert.equal(sum(metrics, 'echo_http_requests_total{method="GET",status="200"}'), 10, metrics);
    assert.match(metrics, /^echo_workers 2$/m);
    // The echo port echoes /metrics like any path.
    assert.match((await get(url, '/metrics')).body, /^Method: GET$/m);
  });
});
