// Why --shutdown-delay exists, shown with a real HAProxy (the deploy/swarm image) that
// knows its servers only by their health checks, as most balancers do: HAProxy's own
// defaults (3 retries on the same server, no redispatch), /readyz checked every 500 ms,
// out after 2 failures. One of two echo-server processes gets SIGTERM under load.
// Without a delay its port closes at once and HAProxy, not yet aware, sends requests to
// it that fail; with a delay longer than the checks need, not one request fails.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers.ts';
import { DOCKER, PREFIX, buildHaproxyImage, docker, dockerSkip, get, load, runCommand, until } from './fleet.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

interface Backend {
  child: ChildProcess;
  port: number;
  exit: Promise<unknown>;
}

async function startBackend(name: string, delay: string): Promise<Backend> {
  const child = spawn(
    process.execPath,
    [
      MAIN,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--shutdown-delay',
      delay,
      '--drain-timeout',
      '5s',
      '--access-log=false',
    ],
    {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exit = once(child, 'exit');
  let buf = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /"listeners":\["http:\/\/127\.0\.0\.1:(\d+)"/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`${name} exited before listening`)));
  });
  child.stdout.resume();
  return { child, port, exit };
}

describe('a health-checking balancer and the shutdown delay', { skip: dockerSkip(), timeout: 5 * 60_000 }, () => {
  let image = '';
  let dir = '';
  const containers: string[] = [];
  const backends: Backend[] = [];

  before(async () => {
    image = await buildHaproxyImage();
    dir = mkdtempSync(join(tmpdir(), `${PREFIX}-lb-`));
  });
  after(async () => {
    for (const c of containers) await docker('rm', '-f', c).catch(() => '');
    for (const b of backends) b.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(delay: string) {
    const a = await startBackend('a', delay);
    const b = await startBackend('b', delay);
    backends.push(a, b);
    const port = await freePort();
    const cfg = join(dir, `haproxy-${delay}.cfg`);
    writeFileSync(
      cfg,
      [
        'defaults',
        '    mode http',
        '    timeout connect 2s',
        '    timeout client 10s',
        '    timeout server 10s',
        `frontend echo`,
        `    bind 127.0.0.1:${port}`,
        '    default_backend echo',
        '    http-response set-header X-Served-By %s',
        'backend echo',
        '    option httpchk GET /readyz',
        '    default-server check inter 500ms fall 2 rise 1',
        `    server a 127.0.0.1:${a.port}`,
        `    server b 127.0.0.1:${b.port}`,
        '',
      ].join('\n'),
    );
    const name = `${PREFIX}-lb-${delay}`;
    containers.push(name);
    await docker(
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '-v',
      `${cfg}:/usr/local/etc/haproxy/haproxy.cfg:ro`,
      image,
    );
    const url = `http://127.0.0.1:${port}/`;
    const logs = async () =>
      (await docker('logs', name).catch((e: Error) => e.message)) +
      (await docker('inspect', name, '--format', '{{.State.Status}}').catch(() => ''));
    await until(
      'both backends in rotation',
      20_000,
      async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 6; i++) {
          const r = await get(url);
          if (r.status === 200) seen.add(String(r.headers['x-served-by']));
        }
        return seen.size === 2;
      },
      200,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\nHAProxy: ${await logs()}`);
    });
    let stopped = false;
    const served = new Map<string, number>();
    const result = load(url, {
      rate: 100,
      concurrency: 4,
      minSeconds: 6,
      maxSeconds: 20,
      done: () => stopped,
      onOk: (answer) => {
        const by = String(answer.headers['x-served-by']);
        served.set(by, (served.get(by) ?? 0) + 1);
      },
    });
    // The load reaches both backends before one of them is stopped.
    await until(
      'load answered by both backends',
      10_000,
      () => Promise.resolve((served.get('a') ?? 0) >= 20 && (served.get('b') ?? 0) >= 20),
      50,
    );
    a.child.kill('SIGTERM');
    await a.exit;
    // The load goes on until HAProxy has noticed (it says so on stderr), and then for 20 more answers (all from b).
    await until(
      'HAProxy took a out of rotation',
      10_000,
      async () => /Server echo\/a is DOWN/.test((await runCommand(DOCKER, ['logs', name])).output),
      200,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\nHAProxy: ${await logs()}`);
    });
    const fromB = served.get('b') ?? 0;
    await until(
      '20 answers after a left rotation',
      10_000,
      () => Promise.resolve((served.get('b') ?? 0) >= fromB + 20),
      50,
    );
    stopped = true;
    const r = await result;
    console.log(
      `# shutdown delay ${delay}: ${r.sent} requests through HAProxy while one of two backends stopped, ${r.failed} failed${r.failures[0] === undefined ? '' : ` (first: ${r.failures[0].slice(0, 60)})`}`,
    );
    b.child.kill('SIGTERM');
    await b.exit;
    await docker('rm', '-f', name);
    return r;
  }

  it('without a delay, requests fail while the balancer has not yet noticed', async () => {
    const r = await run('0s');
    assert.ok(r.failed > 0, 'the race the delay exists for is real');
  });

  it('with a delay longer than the checks need, no request fails', async () => {
    const r = await run('2s');
    assert.deepEqual(r.failures, []);
    assert.equal(r.failed, 0);
  });
});
