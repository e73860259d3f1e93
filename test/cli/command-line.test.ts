// Every spelling of the server's command line (src/cli.ts, node:util parseArgs
// underneath): what is accepted reaches the running server's configuration, what is
// refused exits 2 naming the flag. Also: each script refuses an option it does not take.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from './in-process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(REPO, 'src/main.ts');
const LOOPBACK = ['--port', '0', '--host', '127.0.0.1', '--drain-timeout', '0'];

const cli = (argv: string[], env: Record<string, string> = {}) => runCli(argv, env);

describe('command line: accepted forms reach the configuration', () => {
  // [what, argv, environment, expected configuration values]
  const accepted: [string, string[], Record<string, string>, Record<string, unknown>][] = [
    ['a boolean alone', ['--health-control'], {}, { healthControl: true }],
    ['--flag=true', ['--health-control=true'], {}, { healthControl: true }],
    ['--flag=false', ['--identity=false'], {}, { identity: false }],
    ['--flag false as two arguments', ['--identity', 'false'], {}, { identity: false }],
    ['--flag TRUE as two arguments, any case', ['--health-control', 'TRUE'], {}, { healthControl: true }],
    ['--no-flag', ['--no-identity'], {}, { identity: false }],
    [
      'a boolean followed by another flag takes no value from it',
      ['--health-control', '--max-echo-body', '1KiB'],
      {},
      { healthControl: true, maxEchoBody: 1024 },
    ],
    ['a boolean followed by the command', ['--no-identity', 'serve'], {}, { identity: false }],
    ['--flag=value', ['--max-echo-body=2KiB'], {}, { maxEchoBody: 2048 }],
    ['--flag value', ['--max-echo-body', '2KiB'], {}, { maxEchoBody: 2048 }],
    [
      'a value holding =',
      ['--echo-env=A_*', '--trusted-proxies', '10.0.0.0/8'],
      {},
      { echoEnv: ['A_*'], trustedProxies: ['10.0.0.0/8'] },
    ],
    ['--flag= (empty value)', ['--liveness-path='], {}, { livenessPath: '' }],
    ['--flag "" (empty value as its own argument)', ['--liveness-path', ''], {}, { livenessPath: '' }],
    ['the command after the flags', ['--sse-count', '3', 'serve'], {}, { sseCount: 3 }],
    [
      'an environment variable over the default',
      [],
      { ECHO_IDENTITY: 'false', ECHO_SSE_COUNT: '4' },
      { identity: false, sseCount: 4 },
    ],
    [
      'a flag over its environment variable',
      ['--identity', '--sse-count=5'],
      { ECHO_IDENTITY: 'false', ECHO_SSE_COUNT: '4' },
      { identity: true, sseCount: 5 },
    ],
    ['--no-flag over its environment variable', ['--no-identity'], { ECHO_IDENTITY: 'true' }, { identity: false }],
  ];
  for (const [what, argv, env, expected] of accepted) {
    it(`accepts ${what}: ${JSON.stringify(argv)}`, async () => {
      const r = await cli([...argv, ...LOOPBACK], env);
      assert.equal(r.code, 0, r.err);
      assert.ok(r.config, 'the server started');
      for (const [key, value] of Object.entries(expected)) assert.deepEqual(r.config[key], value, key);
    });
  }

  for (const argv of [['--help'], ['-h'], ['--port', '1', '--help'], ['healthcheck', '--help']]) {
    it(`prints the help for ${JSON.stringify(argv)}`, async () => {
      const r = await cli(argv);
      assert.equal(r.code, 0);
      assert.match(r.out, /^Usage:$/m);
    });
  }
  for (const argv of [['--version'], ['-v']]) {
    it(`prints the version for ${JSON.stringify(argv)}`, async () => {
      const r = await cli(argv);
      assert.equal(r.code, 0);
      assert.match(r.out, /^echo-server \d+\.\d+\.\d+/);
    });
  }
});

describe('command line: refused forms exit 2, naming the flag', () => {
  // [what, argv, message on standard error]
  const refused: [string, string[], RegExp][] = [
    [
      'an unknown flag, with the closest one',
      ['--prot', '80'],
      /^echo-server: unknown flag --prot; did you mean --port\? \(see --help\)$/m,
    ],
    ['an unknown flag given with =', ['--max-dealy=1s'], /unknown flag --max-dealy; did you mean --max-delay\?/],
    ['--no- on a flag that takes a value', ['--no-port'], /unknown flag --no-port; did you mean --port\?/],
    ['--no- on another valued flag', ['--no-max-delay'], /unknown flag --no-max-delay; did you mean --max-delay\?/],
    ['--no-flag=value', ['--no-identity=false'], /unknown flag --no-identity; did you mean --identity\?/],
    ['--no-help', ['--no-help'], /unknown flag --no-help/],
    ['a value for --help', ['--help=1'], /unknown flag --help/],
    ['an empty number', ['--sse-count='], /invalid --sse-count: /],
    ['an empty boolean', ['--identity='], /invalid --identity: "" is not a boolean/],
    ['a boolean that is not true or false', ['--identity=maybe'], /invalid --identity: "maybe" is not a boolean/],
    ['a word after a boolean', ['--identity', 'maybe'], /unexpected argument "maybe"/],
    ['a missing value', ['--max-delay'], /--max-delay needs a value/],
    [
      'a repeated flag (no last-one-wins)',
      ['--sse-count', '1', '--sse-count', '2'],
      /--sse-count is given more than once; give each flag once/,
    ],
    ['a repeated flag, = and space', ['--sse-count=1', '--sse-count', '2'], /--sse-count is given more than once/],
    ['a boolean and its --no- form', ['--no-identity', '--identity'], /--identity is given more than once/],
    ['a short option other than -h and -v', ['-p', '80'], /unexpected argument "-p"/],
    ['grouped short options', ['-hv'], /unexpected argument "-hv"/],
    ['a second command', ['serve', 'serve'], /unexpected argument "serve"/],
    ['a stray word', ['serv'], /unexpected argument "serv"/],
    ['the end-of-options marker', ['--', 'serve'], /unexpected argument "--"/],
    ['an error before --help', ['--bogus', '--help'], /unknown flag --bogus/],
    ['an error after --help', ['--help', '--bogus'], /unknown flag --bogus/],
  ];
  for (const [what, argv, message] of refused) {
    it(`refuses ${what}: ${JSON.stringify(argv)}`, async () => {
      // The flags that keep a started server on loopback go first: the case's last word stays last.
      const r = await cli([...LOOPBACK, ...argv]);
      assert.equal(r.code, 2, `accepted ${JSON.stringify(argv)}`);
      assert.equal(r.config, undefined, 'no server started');
      assert.match(r.err, message);
      assert.match(r.err, /Run "echo-server --help" for the list of settings\.\n$/);
    });
  }

  it('the real binary exits 2 on --no- with a valued flag, with the suggestion', async () => {
    const r = await run(process.execPath, [MAIN, '--no-port']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^echo-server: unknown flag --no-port; did you mean --port\? \(see --help\)$/m);
  });
});

/** Runs a command to its end; never rejects. */
function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: REPO, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

describe('scripts refuse options they do not take, with exit status 2', () => {
  // [script, arguments, message]. Each stops before doing anything (no build, no docker, no key).
  const refused: [string, string[], string][] = [
    ['build', ['--bogus'], 'build: unknown or incomplete argument --bogus'],
    ['build', ['--outfile'], 'build: unknown or incomplete argument --outfile'],
    ['build', ['--minify=yes'], 'build: unknown or incomplete argument --minify'],
    ['build', ['dist/x.cjs'], 'build: unknown or incomplete argument dist/x.cjs'],
    ['sbom', ['--bogus', 'x'], 'sbom: unknown or incomplete argument --bogus'],
    ['sbom', ['--metafile', 'm.json'], 'sbom: missing --lock'],
    ['runtime-facts', ['--bogus', 'node', 'out.json'], 'usage: node scripts/runtime-facts.ts NODE_BINARY OUT.json'],
    ['image', ['--airgap', '--bogus', '--', '--build-arg', 'X=1'], 'image: unknown or incomplete argument --bogus'],
    ['image', ['--tag'], 'image: unknown or incomplete argument --tag'],
    ['keygen', ['--prefix', 'x', '--forse'], 'keygen: unknown or incomplete argument --forse'],
    [
      'release',
      ['--registry', '127.0.0.1:9', '--password', 'secret'],
      'release: unknown or incomplete argument --password',
    ],
    ['verify', ['--kye', 'cosign.pub', '127.0.0.1:9/echo@sha256:00'], 'verify: unknown or incomplete argument --kye'],
    ['screenshots', ['--all'], 'screenshots: unknown or incomplete argument --all'],
  ];
  for (const [script, args, message] of refused) {
    const file = join(REPO, 'scripts', `${script}.ts`);
    // The image build's context holds only the scripts the build runs.
    it(
      `${script} ${args.join(' ')}`,
      { skip: !existsSync(file) && `${script}.ts is not in this checkout` },
      async () => {
        const r = await run(process.execPath, [file, ...args]);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr.trim(), message);
        assert.equal(r.stdout, '');
      },
    );
  }

  it('build refuses before building: no output file is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'echo-build-args-'));
    try {
      const r = await run(process.execPath, [
        join(REPO, 'scripts/build.ts'),
        '--outfile',
        join(dir, 'echo-server.cjs'),
        '--sorcemap',
      ]);
      assert.equal(r.code, 2);
      assert.deepEqual(await readdir(dir), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
