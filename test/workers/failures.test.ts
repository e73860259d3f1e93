// --workers under the failures an outsider or a bad day brings: a flood of scrapes,
// a worker that keeps dying, a worker that freezes. The real binary as a child
// process, real clients on loopback, memory read from /proc.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { selfSigned } from '../../src/transport/self-signed.ts';
import { sleep } from '../helpers.ts';
import { exitWithin, rssMiB, spawnMain, until, type Server } from '../hardening/process.ts';

/** One GET on `agent` (keep-alive) or a new connection; rejects after `timeoutMs`. */
function fetchText(
  url: string,
  timeoutMs: number,
  agent: Agent | false = false,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} not answered within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const servers: Server[] = [];
async function start(args: string[]): Promise<{ s: Server; url: string; workerPids: () => number[] }> {
  const s = spawnMain(['--port', '0', '--host', '127.0.0.1', '--drain-timeout', '2s', ...args]);
  servers.push(s);
  await until(
    () => s.lines.some((l) => l.msg === 'echo-server started') || s.exited,
    30_000,
    'the primary logs "echo-server started"',
  );
  const started = s.lines.find((l) => l.msg === 'echo-server started');
  assert.ok(started, `not started: ${s.stderr()}`);
  // The workers serving now: the last "worker started" line of each slot.
  const workerPids = () => {
    const bySlot = new Map<number, number>();
    for (const l of s.lines) if (l.msg === 'worker started') bySlot.set(l.worker as number, l.pid as number);
    return [...bySlot.values()];
  };
  return { s, url: (started.listeners as string[])[0]!, workerPids };
}

describe('--workers under a /metrics flood', { timeout: 120_000 }, () => {
  after(() => {
    for (const s of servers) s.kill();
  });

  it('keeps answering other clients and keeps memory bounded while 100 connections scrape back to back', async () => {
    const { s, url, workerPids } = await start(['--workers', '2']);
    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    let flooding = true;
    let scrapes = 0;
    let scrapeErrors = 0;
    const flood = Array.from({ length: 100 }, async () => {
      while (flooding) {
        try {
          await fetchText(`${url}/metrics`, 10_000, agent);
          scrapes++;
        } catch {
          scrapeErrors++;
        }
      }
    });
    const pids = [s.pid, ...workerPids()];
    const peak = new Map<number, number>(pids.map((p) => [p, rssMiB(p)]));
    const idle = new Map(peak);
    // A normal client meanwhile: a new connection every 200 ms for 10 s, each answered within 5 s.
    let answered = 0;
    let slowest = 0;
    const failed: string[] = [];
    const end = Date.now() + 10_000;
    try {
      while (Date.now() < end) {
        const t0 = performance.now();
        try {
          const r = await fetchText(`${url}/normal`, 5000);
          if (r.status === 200) answered++;
          else failed.push(`status ${r.status}`);
        } catch (err) {
          failed.push((err as Error).message);
        }
        slowest = Math.max(slowest, performance.now() - t0);
        for (const p of pids) peak.set(p, Math.max(peak.get(p)!, rssMiB(p)));
        await sleep(200);
      }
    } finally {
      flooding = false;
      await Promise.all(flood);
      agent.destroy();
    }
    const figures = {
      scrapes,
      scrapeErrors,
      answered,
      failed: failed.length,
      slowestMs: Math.round(slowest),
      idleRssMiB: Object.fromEntries(idle),
      peakRssMiB: Object.fromEntries([...peak].map(([p, v]) => [p, Math.round(v)])),
    };
    console.log(JSON.stringify(figures));
    assert.deepEqual(failed, [], JSON.stringify(figures));
    for (const [pid, mib] of peak)
      assert.ok(
        mib < idle.get(pid)! + 80,
        `process ${pid} grew by ${Math.round(mib - idle.get(pid)!)} MiB: ${JSON.stringify(figures)}`,
      );
    // Afterwards the echo answers at once, and the log holds no trace per scrape.
    assert.equal((await fetchText(`${url}/after`, 2000)).status, 200);
    const failures = s.lines.filter((l) => /metrics/.test(String(l.msg)) && l.level === 'error');
    assert.ok(failures.length < 20, `${failures.length} metrics error lines`);
    // Busy is not frozen: the watchdog left both workers alone.
    assert.deepEqual(
      s.lines.filter(
        (l) => l.msg === 'worker stopped answering: killing it' || l.msg === 'worker died: starting a replacement',
      ),
      [],
    );
  });
});

/** Whether the process exists (a stopped one does). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('--workers when a worker keeps dying or freezes', { timeout: 120_000 }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const s of servers) s.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('restarts a worker that keeps dying after a growing pause, and serves again once the cause is gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'workers-backoff-'));
    dirs.push(dir);
    const pair = await selfSigned(['localhost']);
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    await writeFile(cert, pair.cert);
    await writeFile(key, pair.key);
    const { s, url } = await start([
      '--workers',
      '2',
      '--https',
      '--https-port',
      '0',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ]);
    // The key goes bad on disk (the running workers keep their loaded pair), then a worker dies:
    // each replacement now fails at start-up with exit status 2.
    await writeFile(key, 'not a key\n');
    const victim = s.lines.find((l) => l.msg === 'worker started' && l.worker === 1)!;
    process.kill(victim.pid as number, 'SIGKILL');
    const died = () => s.lines.filter((l) => l.msg === 'worker died: starting a replacement' && l.worker === 1);
    await until(() => died().length >= 2, 10_000, 'a replacement failed too');
    // A window of 10 s, on purpose: how many restarts fit in it is the finding.
    await sleep(10_000);
    const deaths = died();
    const pauses = deaths.map((l) => l.restartInMs as number);
    console.log(JSON.stringify({ restartsIn10s: deaths.length, pauses }));
    assert.ok(deaths.length <= 10, `${deaths.length} restarts in about 10 s; pauses ${JSON.stringify(pauses)}`);
    assert.equal(pauses[0], 0, 'a worker that served a while is replaced at once');
    for (let i = 2; i < pauses.length; i++)
      assert.ok(pauses[i]! > pauses[i - 1]!, `pauses grow: ${JSON.stringify(pauses)}`);
    assert.ok(
      deaths.slice(1).every((l) => l.code === 2),
      'the replacements failed at start-up',
    );
    // The other worker serves meanwhile, and the primary keeps counting.
    assert.equal((await fetchText(`${url}/meanwhile`, 2000)).status, 200);
    assert.ok(!s.exited, 'the primary keeps running');
    // The key is good again: the next attempt starts, within the capped pause.
    await writeFile(key, pair.key);
    await until(
      () => s.lines.some((l) => l.msg === 'worker replaced' && l.worker === 1),
      30_000,
      'worker 1 replaced once the key is good',
    );
    s.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(s, 15_000), { code: 0, signal: null });
  });

  it('kills and replaces a worker that stops answering (SIGSTOP), and new connections are served again', async () => {
    const { s, url, workerPids } = await start(['--workers', '2', '--worker-balance', 'reuseport']);
    await until(() => workerPids().length === 2, 5000, 'both "worker started" lines');
    const frozen = s.lines.find((l) => l.msg === 'worker started' && l.worker === 1)!.pid as number;
    process.kill(frozen, 'SIGSTOP');
    try {
      await until(
        () => s.lines.some((l) => l.msg === 'worker stopped answering: killing it'),
        30_000,
        'the watchdog notices',
      );
      const noticed = s.lines.find((l) => l.msg === 'worker stopped answering: killing it')!;
      assert.equal(noticed.pid, frozen);
      assert.equal(noticed.level, 'error');
      await until(() => !alive(frozen), 5000, 'the frozen worker is gone');
      await until(
        () => s.lines.some((l) => l.msg === 'worker replaced' && l.worker === 1),
        30_000,
        'its replacement listens',
      );
      // Every new connection is answered (with reuseport the kernel gave about half to the frozen one).
      const answers = [];
      for (let i = 0; i < 40; i++) answers.push((await fetchText(`${url}/after-freeze/${i}`, 2000)).status);
      assert.deepEqual(answers, Array(40).fill(200));
    } finally {
      if (alive(frozen)) process.kill(frozen, 'SIGKILL');
    }
  });
});
