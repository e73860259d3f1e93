// The log destination must never stop the server. Standard output is a
// pipe nobody reads, a pipe whose reader went away, or /dev/full; in every case the
// real process keeps answering (each request within a hard bound), and the lost
// lines are counted in echo_log_lines_dropped_total and reported on standard error.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { exitWithin, get, httpPort, metric, spawnMain, startedUrl, until, type Server } from './process.ts';

/** Each request, /livez included, must be answered within this. */
const BOUND_MS = 2000;
/** About 2.3 KB of access log per request (the URI is logged). */
const LONG_PATH = '/' + 'x'.repeat(2000);

/**
 * `total` requests over 8 keep-alive connections, every 100th to /livez; returns the
 * slowest time. Far more log than the pipe (and the server's bounded buffer) holds.
 */
async function flood(base: string, total: number): Promise<number> {
  let next = 0;
  let slowest = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      const url = i % 100 === 0 ? `${base}/livez` : `${base}${LONG_PATH}?i=${i}`;
      const r = await get(url, BOUND_MS);
      assert.equal(r.status, 200, url.slice(0, 60));
      slowest = Math.max(slowest, r.ms);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return slowest;
}

async function droppedMetric(base: string): Promise<number> {
  return metric((await get(`${base}/metrics`, BOUND_MS)).body, 'echo_log_lines_dropped_total');
}

describe('a log destination that cannot take the lines', () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.kill();
  });

  /** The server with `stdout` as standard output: flooded, it must keep answering, then stop on SIGTERM. */
  async function stalled(t: TestContext, stdout: 'pipe' | number, total: number): Promise<void> {
    // Nothing reads standard output here, so the port comes from /proc.
    const s = spawnMain(['--port', '0', '--host', '127.0.0.1'], { stdout });
    servers.push(s);
    const base = `http://127.0.0.1:${await httpPort(s)}`;
    const slowest = await flood(base, total);
    assert.ok(slowest < BOUND_MS, `slowest request ${slowest.toFixed(0)} ms`);
    t.diagnostic(`slowest of ${total} requests: ${slowest.toFixed(0)} ms`);
    assert.equal((await get(`${base}/livez`, BOUND_MS)).status, 200);
    assert.ok((await droppedMetric(base)) > 0, 'echo_log_lines_dropped_total > 0');
    await until(
      () => /log line\(s\) dropped: the log destination is not keeping up/.test(s.stderr()),
      2000,
      'a drop report on stderr',
    );
    // Pending log lines must not keep it from stopping.
    s.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(s, 5000), { code: 0, signal: null });
  }

  it('a pipe nobody reads: 2000 requests with long URIs (4.5 MB of log) are each answered within 2 s, /livez too; drops counted and reported; SIGTERM still exits', async (t) => {
    await stalled(t, 'pipe', 2000);
  });

  it('a FIFO nobody reads (a stalled container log driver): the same with 1000 requests', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'echo-log-fifo-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const fifo = join(dir, 'stdout');
    execFileSync('mkfifo', [fifo]);
    // The reader end is opened (so the writer's open does not block) and never read.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    t.after(() => closeSync(reader));
    const writer = openSync(fifo, constants.O_WRONLY);
    try {
      await stalled(t, writer, 1000);
    } finally {
      closeSync(writer);
    }
  });

  it('a reader that goes away: the server keeps answering, drops counted and reported', async () => {
    const s = spawnMain(['--port', '0', '--host', '127.0.0.1']);
    servers.push(s);
    const base = await startedUrl(s);
    s.child.stdout!.destroy(); // the log collector is gone
    for (let i = 0; i < 50; i++) assert.equal((await get(`${base}/gone?i=${i}`, BOUND_MS)).status, 200);
    assert.equal(s.exited, false);
    await until(
      () => /log line\(s\) dropped: writing the log failed: EPIPE/.test(s.stderr()),
      2000,
      'a drop report on stderr',
    );
    assert.ok((await droppedMetric(base)) > 0, 'echo_log_lines_dropped_total > 0');
  });

  it('/dev/full: the process stays up and answers, drops counted and reported', async () => {
    const full = openSync('/dev/full', 'w');
    let s: Server;
    try {
      s = spawnMain(['--port', '0', '--host', '127.0.0.1'], { stdout: full });
    } finally {
      closeSync(full); // the child has its own copy
    }
    servers.push(s);
    const base = `http://127.0.0.1:${await httpPort(s)}`;
    const answer = (path: string) =>
      get(`${base}${path}`, BOUND_MS).catch(async (err: unknown) => {
        const exit = await exitWithin(s, 1000); // a reset connection may mean a dead server
        if (exit === null) throw err;
        throw new Error(`the server died ${JSON.stringify(exit)}: ${s.stderr().slice(-400)}`, { cause: err });
      });
    for (let i = 0; i < 200; i++) assert.equal((await answer(`/full?i=${i}`)).status, 200);
    assert.equal((await get(`${base}/livez`, BOUND_MS)).status, 200);
    assert.ok((await droppedMetric(base)) > 0, 'echo_log_lines_dropped_total > 0');
    await until(() => /log line\(s\) dropped/.test(s.stderr()), 2000, 'a drop report on stderr');
    assert.match(s.stderr(), /log line\(s\) dropped: writing the log failed: ENOSPC/);
    assert.equal(s.exited, false, 'still running');
  });
});
