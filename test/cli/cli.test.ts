import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SETTINGS } from '../../src/config/settings.ts';
import { main } from '../../src/cli.ts';
import { waitFor, waitForInFlight } from '../helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

/** Runs the CLI in-process with captured output. */
async function run(argv: string[], env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await main(argv, { env, stdout, stderr, onSignal: () => {} });
  return { code, out, err };
}

interface Proc {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  exit: Promise<number | null>;
}

/** Starts the real binary on a free port and waits for its startup line. */
async function spawnServer(args: string[] = [], env: Record<string, string> = {}): Promise<Proc> {
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  await waitFor(() => lines.some((l) => l.msg === 'echo-server started'), 10_000);
  const started = lines.find((l) => l.msg === 'echo-server started')!;
  return { child, url: (started.listeners as string[])[0]!, lines, exit };
}

describe('CLI', () => {
  it('prints help listing every setting with its environment twin and default', async () => {
    const { code, out } = await run(['--help']);
    assert.equal(code, 0);
    for (const s of SETTINGS) {
      assert.ok(out.includes(`--${s.flag}`), s.flag);
      assert.ok(out.includes(s.env), s.env);
    }
    assert.match(out, /healthcheck/);
  });

  it('prints the version', async () => {
    const { code, out } = await run(['--version']);
    assert.equal(code, 0);
    assert.match(out, /^echo-server \d+\.\d+\.\d+/);
  });

  const invalid: [string, string[], Record<string, string>, RegExp][] = [
    ['flag value', ['--port', 'eighty'], {}, /invalid --port/],
    ['environment value', [], { ECHO_MAX_DELAY: 'forever' }, /invalid ECHO_MAX_DELAY/],
    ['unknown flag', ['--prot', '80'], {}, /unknown flag --prot/],
    ['missing value', ['--log-level'], {}, /--log-level needs a value/],
  ];
  for (const [name, argv, env, message] of invalid) {
    it(`exits 2 on an invalid ${name}, naming the setting`, async () => {
      const { code, err } = await run(argv, env);
      assert.equal(code, 2);
      assert.match(err, message);
      assert.match(err, /--help/);
    });
  }

  it('healthcheck exits 1 (Docker reserves 2) without a liveness endpoint, naming the setting', async () => {
    const { code, err } = await run(['healthcheck', '--liveness-path=']);
    assert.equal(code, 1);
    assert.match(err, /--liveness-path is empty/);
  });

  it('exits 2 from the real binary on bad configuration', async () => {
    const child = spawn(process.execPath, [MAIN, '--max-body-size', 'lots'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 2);
    assert.match(err, /invalid --max-body-size/);
  });

  it('serves, then on SIGTERM finishes the request in flight and exits 0', async () => {
    const p = await spawnServer(['--drain-timeout', '5s']);
    assert.equal((await fetch(p.url)).status, 200);
    const inflight = fetch(`${p.url}/?echo_delay=500ms`);
    await waitForInFlight(p.url, 1);
    p.child.kill('SIGTERM');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.match(await res.text(), /echo_delay=500ms/);
    assert.equal(await p.exit, 0);
    assert.ok(p.lines.some((l) => l.msg === 'shutdown complete'));
  });

  it('exits at once on a second signal', async () => {
    const p = await spawnServer(['--drain-timeout', '20s']);
    const inflight = fetch(`${p.url}/?echo_delay=10s`).catch(() => 'closed');
    await waitForInFlight(p.url, 1);
    const start = performance.now();
    p.child.kill('SIGINT');
    await waitFor(() => p.lines.some((l) => l.msg === 'shutting down: draining'), 5000);
    p.child.kill('SIGINT');
    assert.equal(await p.exit, 1);
    assert.ok(performance.now() - start < 3000);
    await inflight;
  });

  it('healthcheck exits 0 against a live server and 1 when it fails or is absent', async () => {
    const p = await spawnServer(['--health-control']);
    const port = new URL(p.url).port;
    try {
      assert.equal((await run(['healthcheck', '--port', port], {})).code, 0);
      const viaEnv = await run(['healthcheck'], { ECHO_PORT: port });
      assert.equal(viaEnv.code, 0);
      assert.match(viaEnv.out, /healthy: GET http:\/\/127\.0\.0\.1:\d+\/livez answered 200/);
      await fetch(`${p.url}/?echo_health=fail`);
      const failing = await run(['healthcheck', '--port', port]);
      assert.equal(failing.code, 1);
      assert.match(failing.err, /unhealthy: .* answered 503/);
    } finally {
      p.child.kill('SIGTERM');
      await p.exit;
    }
    const absent = await run(['healthcheck', '--port', port, '--healthcheck-timeout', '1s']);
    assert.equal(absent.code, 1);
    assert.match(absent.err, /unhealthy: .*failed/);
  });

  it('exits 2 when the port is taken', async () => {
    const p = await spawnServer();
    try {
      const child = spawn(process.execPath, [MAIN, '--port', new URL(p.url).port, '--host', '127.0.0.1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 2);
      assert.match(out, /EADDRINUSE|address already in use/);
    } finally {
      p.child.kill('SIGTERM');
      await p.exit;
    }
  });

  it('lists the L4 echo ports at start-up, and names --tcp-port and --udp-port when they are taken', async () => {
    const p = await spawnServer(['--tcp-port', '0', '--tcp-tls-port', '0', '--udp-port', '0']);
    try {
      const listeners = p.lines.find((l) => l.msg === 'echo-server started')!.listeners as string[];
      assert.deepEqual(
        listeners.map((u) => new URL(u).protocol),
        ['http:', 'tcp:', 'tls:', 'udp:'],
      );
      const [tcp, , udp] = listeners.slice(1).map((u) => new URL(u).port);
      for (const [flag, port] of [
        ['tcp-port', tcp!],
        ['udp-port', udp!],
      ] as const) {
        const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', `--${flag}`, port], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
        });
        const [code] = (await once(child, 'exit')) as [number];
        assert.equal(code, 2, out);
        assert.match(
          out,
          new RegExp(`port ${port} \\(${flag.slice(0, 3)} listener, --${flag}\\).*(EADDRINUSE|address already in use)`),
        );
      }
    } finally {
      p.child.kill('SIGTERM');
      await p.exit;
    }
  });

  it('writes readable text logs when asked', async () => {
    const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--log-format', 'text'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await waitFor(() => out.includes('echo-server started'), 10_000);
    child.kill('SIGTERM');
    await once(child, 'exit');
    assert.match(out, /^\d{4}-\d\d-\d\dT\S+ INFO echo-server started name=echo-server version=/m);
  });
});
