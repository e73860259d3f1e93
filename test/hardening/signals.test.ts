// Signals. SIGUSR1 must not open Node's inspector (anyone in the network
// namespace could then run code in the server); SIGUSR2 is logged and ignored;
// SIGHUP and SIGQUIT drain and exit 0 like SIGTERM, with a log line. Checked on the
// real process as each launcher starts it: the `npm start` command, the production
// bundle run through its own shebang, and plain `node src/main.ts` (tests, bench).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  MAIN,
  REPO,
  exitWithin,
  get,
  listeningPorts,
  pendingAndBlocked,
  spawnServer,
  startCommand,
  startedUrl,
  until,
  type Server,
} from './process.ts';

const ARGS = ['--port', '0', '--host', '127.0.0.1'];

interface Launcher {
  name: string;
  start(): Server;
  /** Started with --disable-sigusr1: Node then blocks SIGUSR1, so no handler (and no log) sees it. */
  disablesSigusr1: boolean;
}

const logged = (s: Server, msg: RegExp, signal: string) =>
  s.lines.some((l) => msg.test(String(l.msg)) && l.signal === signal);

describe('signals, for every launcher', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-signals-'));
    await promisify(execFile)(process.execPath, ['scripts/build.ts', '--outfile', join(dir, 'echo-server.cjs')], {
      cwd: REPO,
    });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const launchers: Launcher[] = [
    {
      name: 'npm start (its command from package.json)',
      disablesSigusr1: true,
      start: () => {
        const [cmd, ...rest] = startCommand();
        return spawnServer(cmd!, [...rest, ...ARGS]);
      },
    },
    {
      name: 'the bundle, executed through its shebang',
      disablesSigusr1: true,
      start: () => spawnServer(join(dir, 'echo-server.cjs'), ARGS, { cwd: dir }),
    },
    {
      name: 'node src/main.ts without flags, once started',
      disablesSigusr1: false,
      start: () => spawnServer(process.execPath, [MAIN, ...ARGS]),
    },
  ];

  /** Starts one server for one test; it is killed when the test ends, passed or not. */
  async function started(l: Launcher, t: TestContext): Promise<{ s: Server; url: string }> {
    const s = l.start();
    t.after(() => s.kill());
    return { s, url: await startedUrl(s) };
  }

  for (const l of launchers) {
    describe(l.name, () => {
      it('SIGUSR1 opens no inspector, and the server keeps serving', async (t) => {
        const { s, url } = await started(l, t);
        s.child.kill('SIGUSR1');
        const inspector = () => /Debugger listening|inspector/i.test(s.stderr());
        // Under --disable-sigusr1 the signal stays pending, blocked in every thread: nothing can act on it, ever.
        if (l.disablesSigusr1)
          await until(() => s.exited || pendingAndBlocked(s.pid, 'SIGUSR1'), 5000, 'SIGUSR1 pending and blocked');
        else
          await until(
            () => s.exited || inspector() || logged(s, /^signal ignored/, 'SIGUSR1'),
            5000,
            'SIGUSR1 handled',
          );
        assert.doesNotMatch(s.stderr(), /Debugger listening|inspector/i);
        assert.equal(s.exited, false, 'alive after SIGUSR1');
        assert.deepEqual(
          listeningPorts(s.pid),
          [Number(new URL(url).port)],
          'no listener but the HTTP port (the inspector would be 9229)',
        );
        assert.equal((await get(`${url}/livez`)).status, 200);
        if (!l.disablesSigusr1) assert.ok(logged(s, /^signal ignored/, 'SIGUSR1'), 'SIGUSR1 logged');
      });

      it('SIGUSR2 is logged and ignored', async (t) => {
        const { s, url } = await started(l, t);
        s.child.kill('SIGUSR2');
        await until(() => s.exited || logged(s, /^signal ignored/, 'SIGUSR2'), 5000, 'SIGUSR2 handled');
        assert.equal(s.exited, false, `alive after SIGUSR2 (${JSON.stringify(await exitWithin(s, 0))})`);
        assert.equal((await get(`${url}/livez`)).status, 200);
      });

      for (const signal of ['SIGHUP', 'SIGQUIT'] as const) {
        it(`${signal} drains like SIGTERM, is logged, and exits 0`, async (t) => {
          const { s } = await started(l, t);
          s.child.kill(signal);
          assert.deepEqual(await exitWithin(s, 5000), { code: 0, signal: null });
          assert.ok(logged(s, /^shutting down: draining$/, signal), `${signal} logged`);
          assert.ok(s.lines.some((x) => x.msg === 'shutdown complete'));
        });
      }
    });
  }
});

describe('every way the server is started disables the SIGUSR1 inspector', () => {
  /** The exec-form JSON array of a Dockerfile instruction (continuation lines joined). */
  function execForm(dockerfile: string, instruction: RegExp): string[] {
    const joined = dockerfile.replace(/\\\n\s*/g, ' ');
    const line = joined.split('\n').find((x) => instruction.test(x));
    assert.ok(line, `no ${String(instruction)} in the Dockerfile`);
    return JSON.parse(line.slice(line.indexOf('['))) as string[];
  }
  /** The flag must come before the script: after it, it would be an argument of the server. */
  const flagBeforeScript = (argv: string[], script: RegExp) => {
    const at = argv.findIndex((a) => script.test(a));
    assert.ok(at > 0, `no script in ${JSON.stringify(argv)}`);
    assert.ok(
      argv.slice(0, at).includes('--disable-sigusr1'),
      `--disable-sigusr1 before the script in ${JSON.stringify(argv)}`,
    );
  };

  it('the image ENTRYPOINT and HEALTHCHECK, npm start and the shebang of main.ts', async () => {
    const dockerfile = await readFile(join(REPO, 'Dockerfile'), 'utf8');
    flagBeforeScript(execForm(dockerfile, /^ENTRYPOINT /), /echo-server\.cjs$/);
    flagBeforeScript(execForm(dockerfile, /^HEALTHCHECK .* CMD \[/), /echo-server\.cjs$/);
    flagBeforeScript(startCommand(), /main\.ts$/);
    const shebang = (await readFile(MAIN, 'utf8')).split('\n')[0]!;
    assert.match(shebang, /^#!\/usr\/bin\/env -S node (\S+ )*--disable-sigusr1( |$)/);
  });
});
