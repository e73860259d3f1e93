// --workers under the failures an outsider or a bad day brings: a flood of scrapes,
// a worker that keeps dying, a worker that freezes. The real binary as a child
// process, real clients on loopback, memory read from /proc.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, describe, it } from 'node:test';
import { sleep } from '../helpers.ts';
import { rssMiB, spawnMain, until, type Server } from '../hardening/process.ts';

/** One GET on `agent` (keep-alive) or a new connection; rejects after `timeoutMs`. */
function fetchText(url: string, timeoutMs: number, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
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
  await until(() => s.lines.some((l) => l.msg === 'echo-server started') || s.exited, 30_000, 'the primary logs "echo-server started"');
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
  after(() => { for (const s of servers) s.kill(); });

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
    const figures = { scrapes, scrapeErrors, answered, failed: failed.length, slowestMs: Math.round(slowest), idleRssMiB: Object.fromEntries(idle), peakRssMiB: Object.fromEntries([...peak].map(([p, v]) => [p, Math.round(v)])) };
    console.log(JSON.stringify(figures));
    assert.deepEqual(failed, [], JSON.stringify(figures));
    for (const [pid, mib] of peak) assert.ok(mib < idle.get(pid)! + 50, `process ${pid} grew by ${Math.round(mib - idle.get(pid)!)} MiB: ${JSON.stringify(figures)}`);
    // Afterwards the echo answers at once, and the log holds no trace per scrape.
    assert.equal((await fetchText(`${url}/after`, 2000)).status, 200);
    const failures = s.lines.filter((l) => /metrics/.test(String(l.msg)) && l.level === 'error');
    assert.ok(failures.length < 20, `${failures.length} metrics error lines`);
  });
});
