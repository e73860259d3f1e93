// HAProxy with `server ... proto h2 check` and `option httpchk GET /readyz`: its
// health check is an HTTP/2 request without :authority or Host. The backend must
// stay UP, and every check be logged and counted by echo-server.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** `show stat` from HAProxy's stats socket, as rows of named fields. */
function showStat(socketPath: string): Promise<Record<string, string>[]> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let out = '';
    s.on('data', (d: Buffer) => {
      out += d.toString();
    });
    s.on('error', reject);
    s.on('close', () => {
      const [head = '', ...rows] = out.trim().split('\n');
      const names = head.replace(/^# /, '').split(',');
      resolve(rows.map((r) => Object.fromEntries(r.split(',').map((v, i) => [names[i] ?? String(i), v]))));
    });
    s.end('show stat\n');
  });
}

describe('HAProxy h2 health checks (proto h2, option httpchk)', () => {
  let t: TestServer;
  let haproxy: ChildProcess | null = null;
  let dir: string;
  let stats: string;
  let output = '';
  before(async () => {
    if (spawnSync('sh', ['-c', 'command -v haproxy'], { stdio: 'ignore' }).status !== 0) return; // the test says so
    t = await startTestServer({ logOpsRequests: true });
    dir = mkdtempSync(join(tmpdir(), 'admission-haproxy-'));
    stats = join(dir, 'stats.sock');
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(
      cfg,
      [
        'global',
        `  stats socket ${stats} mode 600 level admin`,
        'defaults',
        '  mode http',
        '  timeout connect 2s',
        '  timeout client 5s',
        '  timeout server 5s',
        '  timeout check 2s',
        'backend echo',
        '  option httpchk GET /readyz',
        `  server e1 127.0.0.1:${t.port} proto h2 check inter 200ms fall 1 rise 1`,
        '',
      ].join('\n'),
    );
    haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    haproxy.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
    });
  });
  after(async () => {
    if (haproxy !== null && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await new Promise((r) => haproxy!.once('exit', r));
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    await t?.close();
  });

  it('keeps the backend UP, each check answered 200, logged and counted', async (ctx) => {
    if (!requireTool(ctx, 'haproxy')) return;
    const checked = () =>
      t.logs.lines.filter((l) => l.msg === 'request' && l.uri === '/readyz' && l.status === 200).length;
    // Several checks, 200 ms apart: a reset one (fall 1) would mark the server DOWN.
    await waitFor(() => checked() >= 5, 10_000, `5 health checks answered (haproxy said: ${output.slice(-500)})`, 50);
    const row = (await showStat(stats)).find((r) => r.pxname === 'echo' && r.svname === 'e1');
    assert.ok(row !== undefined, "the server is in HAProxy's stats");
    assert.equal(row.status, 'UP', `check_status ${row.check_status}`);
    assert.equal(row.check_status, 'L7OK');
    assert.doesNotMatch(output, /is DOWN/);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const counted = Number(/^echo_http_requests_total\{method="GET",status="200"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    assert.ok(counted >= 5, `checks counted: ${counted}`);
  });
});
