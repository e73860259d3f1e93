// The production image, checked against a real Docker engine: built from the
// Dockerfile against the air-gapped stand-in bases, then inspected and run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONSOLE_JS } from '../../src/echo/render/assets.ts';
import { HTML_CSP } from '../../src/echo/render/html.ts';
import { rawRequest, waitFor, waitForInFlight } from '../helpers.ts';
import {
  DOCKER,
  docker,
  engineAvailable,
  listImageFiles,
  pipeDocker,
  runCommand,
  waitForStatus,
  type TarEntry,
} from './docker.ts';

const available = engineAvailable();
if (!available) {
  const msg =
    `\n*** IMAGE TESTS: no Docker engine reachable through ${DOCKER}. ` +
    (process.env.CI === 'true'
      ? 'CI=true, so this is a failure. ***\n'
      : 'Skipping them; run .ci/run (or start dockerd) to include them. ***\n');
  process.stderr.write(msg);
}

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  version: string;
  license: string;
  description: string;
};
const IMAGE = `echo-server:test-${process.pid}`;
const containers: string[] = [];
let bases: { BUILDER_IMAGE: string; RUNTIME_IMAGE: string };

async function run(...args: string[]): Promise<string> {
  const name = `echo-test-${process.pid}-${containers.length}`;
  containers.push(name);
  await docker('run', '-d', '--name', name, ...args);
  return name;
}

async function publishedPort(name: string): Promise<number> {
  const mapping = await docker('port', name, '8080/tcp');
  return Number(/127\.0\.0\.1:(\d+)/.exec(mapping)![1]);
}

async function waitForHttp(port: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/livez`)).ok,
    timeoutMs,
    `the container answers /livez on port ${port}`,
    100,
  );
}

describe(
  'production image',
  {
    skip: !available && process.env.CI !== 'true' ? 'no Docker engine (see the message above)' : false,
    timeout: 20 * 60_000,
  },
  () => {
    let files: TarEntry[];
    let config: Record<string, unknown>;
    let buildSeconds = 0;

    before(async () => {
      assert.ok(available, `CI needs a Docker engine (client ${DOCKER})`);
      const out = execFileSync('bash', ['scripts/airgap-bases.sh'], {
        encoding: 'utf8',
        env: { ...process.env, DOCKER },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      bases = Object.fromEntries(
        out
          .trim()
          .split('\n')
          .map((l) => l.split('=')),
      ) as typeof bases;
      const start = performance.now();
      const build = await runCommand(process.execPath, ['scripts/image.ts', '--airgap', '--tag', IMAGE], {
        ...process.env,
        DOCKER,
      });
      buildSeconds = (performance.now() - start) / 1000;
      assert.equal(build.code, 0, build.output);
      config = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', IMAGE)) as Record<
        string,
        unknown
      >;
      files = await listImageFiles(IMAGE);
    });

    after(async () => {
      for (const c of containers) await docker('rm', '-f', c).catch(() => '');
      await docker('image', 'rm', '-f', IMAGE).catch(() => '');
    });

    it('carries every applicable OCI label with real values, and the custom environment label', () => {
      const labels = config.Labels as Record<string, string>;
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
      const commitTime = new Date(
        Number(execFileSync('git', ['show', '-s', '--format=%ct', 'HEAD'], { encoding: 'utf8' }).trim()) * 1000,
      );
      const repo = 'https://github.com/echo-server/echo-server';
      assert.deepEqual(labels, {
        'org.opencontainers.image.title': 'echo-server',
        'org.opencontainers.image.description': pkg.description,
        'org.opencontainers.image.url': repo,
        'org.opencontainers.image.source': repo,
        'org.opencontainers.image.documentation': `${repo}#readme`,
        'org.opencontainers.image.authors': 'echo-server contributors',
        'org.opencontainers.image.vendor': 'echo-server contributors',
        'org.opencontainers.image.licenses': pkg.license,
        'org.opencontainers.image.version': pkg.version,
        'org.opencontainers.image.revision': head,
        'org.opencontainers.image.created': labels['org.opencontainers.image.created'],
        'org.opencontainers.image.ref.name': labels['org.opencontainers.image.ref.name'],
        'org.opencontainers.image.base.name': bases.RUNTIME_IMAGE,
        'io.github.echo-server.environment': 'production',
      });
      const created = labels['org.opencontainers.image.created'] ?? '';
      assert.match(created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'RFC 3339');
      assert.equal(new Date(created).getTime(), commitTime.getTime(), 'created is the commit time');
      assert.match(labels['org.opencontainers.image.ref.name']!, /^[A-Za-z0-9._/-]+$/);
      assert.match(pkg.license, /^[A-Za-z0-9.\-+]+( (AND|OR) [A-Za-z0-9.\-+]+)*$/, 'SPDX expression');
      for (const v of Object.values(labels)) assert.doesNotMatch(String(v), /my-repo|unknown|placeholder|TODO/i);
    });

    it('passes BUILD_FLAGS to the production build', async () => {
      const tag = `${IMAGE}-build-stage`;
      const { code, output } = await runCommand(
        DOCKER,
        ['build', '--target', 'build', '--tag', tag, ...baseArgs(), '--build-arg', 'BUILD_FLAGS=--no-minify', '.'],
        { ...process.env, DOCKER_BUILDKIT: '1' },
      );
      assert.equal(code, 0, output);
      try {
        const head = await docker(
          'run',
          '--rm',
          '--entrypoint',
          'grep',
          tag,
          '-c',
          'function createApp(',
          'dist/echo-server.cjs',
        );
        assert.equal(head, '1', 'the bundle was built without minification');
      } finally {
        await docker('image', 'rm', '-f', tag).catch(() => '');
      }
    });

    it('runs as a numeric non-root user, in production mode, on port 8080, in exec form', () => {
      assert.equal(config.User, '8080:8080');
      assert.deepEqual(
        config.ExposedPorts,
        { '8080/tcp': {}, '7000/tcp': {}, '7001/udp': {} },
        'HTTP, and the documented TCP and UDP echo ports',
      );
      assert.ok((config.Env as string[]).includes('NODE_ENV=production'));
      assert.deepEqual(
        config.Entrypoint,
        ['/nodejs/bin/node', '--disable-sigusr1', '/app/echo-server.cjs'],
        'no inspector by SIGUSR1',
      );
      assert.equal(config.StopSignal, 'SIGTERM');
      const hc = config.Healthcheck as {
        Test: string[];
        Interval: number;
        Timeout: number;
        StartPeriod: number;
        Retries: number;
      };
      assert.deepEqual(
        hc.Test,
        ['CMD', '/nodejs/bin/node', '--disable-sigusr1', '/app/echo-server.cjs', 'healthcheck'],
        'exec form, no shell, no curl',
      );
      assert.deepEqual(
        [hc.Interval, hc.Timeout, hc.StartPeriod, hc.Retries],
        [30e9, 30e9, 5e9, 3],
        "the article's timings",
      );
    });

    it('names the user in passwd and group', async () => {
      const id = await docker('create', IMAGE);
      try {
        const passwd = (await pipeDocker(['cp', `${id}:/etc/passwd`, '-'], 'tar', ['-xOf', '-'])).toString();
        const group = (await pipeDocker(['cp', `${id}:/etc/group`, '-'], 'tar', ['-xOf', '-'])).toString();
        assert.match(passwd, /^docker-app:x:8080:8080:/m);
        assert.match(group, /^docker-app:x:8080:$/m);
      } finally {
        await docker('rm', id);
      }
    });

    it('has no shell, package manager, npm, corepack, curl or setuid file', () => {
      const names = files.map((f) => f.path);
      for (const banned of [
        /\/(ba|da|z|a)?sh$/,
        /\/busybox$/,
        /\/npm(-cli\.js)?$/,
        /\/npx$/,
        /\/corepack$/,
        /\/curl$/,
        /\/wget$/,
        /\/apt(-get)?$/,
        /\/bin\/dpkg$/,
        /\/node_modules(\/|$)/,
      ]) {
        const hit = names.find((n) => banned.test(n));
        assert.equal(hit, undefined, `found ${hit}`);
      }
      const setuid = files.filter((f) => /^[^l].{2}[sS]|^[^l].{5}[sS]/.test(f.mode));
      assert.deepEqual(
        setuid.map((f) => f.path),
        [],
      );
      assert.ok(names.includes('/app/echo-server.cjs'));
      const app = files.find((f) => f.path === '/app/echo-server.cjs')!;
      assert.ok(
        app.mode[5] !== 'w' && app.mode[8] !== 'w',
        `the bundle (${app.mode}, owned by root) is not writable by the server user`,
      );
    });

    it('keeps secrets out of layers and history', async () => {
      const history = await docker('history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE);
      assert.doesNotMatch(history, /BEGIN CERTIFICATE|npm_ca|NODE_EXTRA_CA_CERTS/);
      assert.ok(!files.some((f) => f.path.startsWith('/run/secrets')), 'no secret mount left behind');
      assert.ok(!files.some((f) => /\.npmrc$|\/\.npm(\/|$)/.test(f.path)), 'no npm config or cache');
    });

    it("echoes over a port published on 127.0.0.1, in the article's format", async () => {
      const name = await run('-p', '127.0.0.1::8080', IMAGE);
      const port = await publishedPort(name);
      await waitForHttp(port);
      const res = await rawRequest(
        port,
        `GET / HTTP/1.1\r\nHost: localhost:${port}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n`,
      );
      const lines = res.split('\r\n\r\n')[1]!.split('\n');
      assert.match(lines[0]!, /^RemoteAddr: \d+\.\d+\.\d+\.\d+:\d+$/);
      assert.deepEqual(lines.slice(1, 6), [
        'Method: GET',
        'RequestURI: /',
        'Proto: HTTP/1.1',
        'ContentLength: 0',
        `Headers: {"Host":["localhost:${port}"],"User-Agent":["curl/7.88.1"],"Accept":["*/*"],"Connection":["close"]}`,
      ]);
      assert.match(res, /^Hostname: [0-9a-f]{12}$/m, 'the container answers with its own hostname');
      // The browser page carries its console script and stylesheet, pinned by the CSP.
      const page = await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: 'text/html' } });
      assert.equal(page.headers.get('content-security-policy'), HTML_CSP);
      assert.ok((await page.text()).includes(`<script>${CONSOLE_JS}</script>`));
    });

    it('turns healthy within the start period, and unhealthy when the liveness probe fails', async () => {
      // Docker 20.10 has no --start-interval, so the first probe would wait a full 30 s
      // interval; the test shortens the interval at run time, as an operator can.
      const start = performance.now();
      const name = await run(
        '-p',
        '127.0.0.1::8080',
        '--health-interval',
        '500ms',
        '--health-retries',
        '2',
        '-e',
        'ECHO_HEALTH_CONTROL=true',
        IMAGE,
      );
      await waitForStatus(name, 'healthy', 5000);
      const toHealthy = performance.now() - start;
      process.stdout.write(`# image: docker run -> healthy in ${toHealthy.toFixed(0)} ms (health interval 500ms)\n`);
      const ps = await docker('ps', '--filter', `name=${name}`, '--format', '{{.Status}}');
      assert.match(ps, /\(healthy\)/);
      const port = await publishedPort(name);
      assert.equal((await fetch(`http://127.0.0.1:${port}/?echo_health=fail`)).status, 200);
      await waitForStatus(name, 'unhealthy', 10_000);
      const log = await docker(
        'inspect',
        '--format',
        '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}',
        name,
      );
      assert.match(log, /1 unhealthy: GET http:\/\/127\.0\.0\.1:8080\/livez answered 503/);
    });

    it('stops gracefully: the request in flight completes and the exit code is 0', async () => {
      const name = await run('-p', '127.0.0.1::8080', IMAGE);
      const port = await publishedPort(name);
      await waitForHttp(port);
      const inflight = fetch(`http://127.0.0.1:${port}/?echo_delay=1500ms`);
      await waitForInFlight(`http://127.0.0.1:${port}`, 1); // the stop must find it in flight, not race its arrival
      const start = performance.now();
      await docker('stop', '--time', '20', name);
      const stopMs = performance.now() - start;
      const res = await inflight;
      assert.equal(res.status, 200);
      assert.match(await res.text(), /echo_delay=1500ms/);
      assert.equal(await docker('inspect', '--format', '{{.State.ExitCode}}', name), '0');
      assert.ok(stopMs < 10_000, `stopped in ${stopMs.toFixed(0)} ms, well within the 20 s timeout`);
      const logs = await docker('logs', name);
      assert.match(logs, /"signal":"SIGTERM"/);
      assert.match(logs, /shutdown complete/);
    });

    it('runs with a read-only root, no capabilities, no-new-privileges and an arbitrary UID', async () => {
      const name = await run(
        '-p',
        '127.0.0.1::8080',
        '--read-only',
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '--user',
        '12345:0',
        '--health-interval',
        '500ms',
        IMAGE,
      );
      const port = await publishedPort(name);
      await waitForHttp(port);
      assert.equal((await fetch(`http://127.0.0.1:${port}/?echo_status=202`)).status, 202);
      await waitForStatus(name, 'healthy', 5000);
    });

    /** A copy of the build context in a temporary directory, for builds the tests alter. */
    async function contextCopy(prefix: string): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      for (const p of [
        'package.json',
        'package-lock.json',
        'tsconfig.json',
        'eslint.config.js',
        '.prettierrc.json',
        '.prettierignore',
        'Dockerfile',
        '.dockerignore',
        'README.md',
        'src',
        'test',
        'scripts',
      ]) {
        await cp(p, join(dir, p), { recursive: true });
      }
      return dir;
    }
    const baseArgs = () => [
      '--build-arg',
      `BUILDER_IMAGE=${bases.BUILDER_IMAGE}`,
      '--build-arg',
      `RUNTIME_IMAGE=${bases.RUNTIME_IMAGE}`,
    ];

    it('keeps the dependency layer cached when README, Dockerfile comments or .dockerignore change', async () => {
      const before = await contextCopy('echo-cache-before-');
      const dir = await contextCopy('echo-cache-');
      try {
        await appendFile(join(dir, 'README.md'), '\nan edit\n');
        await appendFile(join(dir, 'Dockerfile'), '\n# an edit\n');
        await appendFile(join(dir, '.dockerignore'), '\n# an edit\n');
        // Compared by result, not by BuildKit's progress text (which omits steps another
        // build running at the same moment shares): `npm ci` run again would give the
        // dependency stage a new layer, so a different image ID.
        const idOf = async (context: string, edited: boolean) => {
          const iid = join(context, '.iid');
          const { code, output } = await runCommand(
            DOCKER,
            ['build', '--progress=plain', '--target', 'deps', '--iidfile', iid, ...baseArgs(), context],
            { ...process.env, DOCKER_BUILDKIT: '1' },
          );
          assert.equal(code, 0, output);
          // And where the step does show, it shows as cached, not as running (timed output lines).
          if (edited)
            assert.doesNotMatch(output, /RUN [^\n]*npm ci[^\n]*\n(#\d+ sha256:[^\n]*\n)?#\d+ \d+\.\d+ /, 'npm ci ran');
          return readFileSync(iid, 'utf8').trim();
        };
        const original = await idOf(before, false);
        assert.equal(await idOf(dir, true), original, 'npm ci was not re-run: the dependency stage is the same image');
      } finally {
        await rm(dir, { recursive: true, force: true });
        await rm(before, { recursive: true, force: true });
      }
    });

    it('fails the build when a test fails', async () => {
      const dir = await contextCopy('echo-failing-build-');
      try {
        await writeFile(
          join(dir, 'test/unit/deliberately-failing.test.ts'),
          "import assert from 'node:assert/strict';\nimport { it } from 'node:test';\nit('deliberately fails', () => assert.equal(1, 2));\n",
        );
        const { code, output } = await runCommand(
          DOCKER,
          [
            'build',
            '--progress=plain',
            '--target',
            'build',
            ...baseArgs(),
            // A per-run value in LINT_FLAGS keeps BuildKit from answering the lint step from its cache.
            '--build-arg',
            `LINT_FLAGS=--format=json --cache-location=/tmp/eslint-${process.pid}-${Date.now()}`,
            '--build-arg',
            'TEST_FLAGS=--test-reporter=tap',
            dir,
          ],
          { ...process.env, DOCKER_BUILDKIT: '1' },
        );
        assert.notEqual(code, 0, 'the build must fail');
        assert.match(output, /"filePath":"\/src\/src\/adapters\/http1\/app\.ts"/, 'LINT_FLAGS reached eslint');
        assert.match(
          output,
          /not ok \d+ - deliberately fails/,
          'TEST_FLAGS reached the test runner, and the test failed',
        );
        assert.match(output, /ERROR|error/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('takes UID, USER and PORT as build arguments', async () => {
      const tag = `${IMAGE}-args`;
      const { code, output } = await runCommand(
        DOCKER,
        [
          'build',
          '--tag',
          tag,
          ...baseArgs(),
          '--build-arg',
          'UID=12000',
          '--build-arg',
          'USER=echo-user',
          '--build-arg',
          'PORT=9090',
          '.',
        ],
        { ...process.env, DOCKER_BUILDKIT: '1' },
      );
      assert.equal(code, 0, output);
      try {
        const c = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', tag)) as {
          User: string;
          ExposedPorts: object;
          Env: string[];
        };
        assert.equal(c.User, '12000:12000');
        assert.deepEqual(c.ExposedPorts, { '9090/tcp': {}, '7000/tcp': {}, '7001/udp': {} });
        assert.ok(c.Env.includes('ECHO_PORT=9090'));
        const name = await run('-p', '127.0.0.1::9090', '--health-interval', '500ms', tag);
        await waitForStatus(name, 'healthy', 5000);
        const mapping = await docker('port', name, '9090/tcp');
        const port = Number(/:(\d+)$/m.exec(mapping)![1]);
        assert.match(await (await fetch(`http://127.0.0.1:${port}/`)).text(), /^Method: GET$/m);
      } finally {
        await docker('image', 'rm', '-f', tag).catch(() => '');
      }
    });

    it('builds faithful stand-ins for both bases', async () => {
      const runtime = JSON.parse(
        await docker('image', 'inspect', '--format', '{{json .Config}}', bases.RUNTIME_IMAGE),
      ) as { Entrypoint: string[]; User: string };
      assert.deepEqual(runtime.Entrypoint, ['/nodejs/bin/node']);
      assert.equal(runtime.User, '65532:65532');
      const rfiles = await listImageFiles(bases.RUNTIME_IMAGE);
      const at = (p: string) => rfiles.find((f) => f.path === p);
      assert.equal(at('/bin/sh'), undefined, 'no shell');
      assert.match(at('/tmp')!.mode, /^drwxrwxrwt/, '/tmp is 1777');
      assert.ok(at('/etc/ssl/certs/ca-certificates.crt')!.size > 1000, 'a CA bundle');
      assert.ok(at('/usr/share/zoneinfo/Europe/Paris') ?? at('/usr/share/zoneinfo/UTC'), 'tzdata');
      const id = await docker('create', bases.RUNTIME_IMAGE);
      try {
        const passwd = (await pipeDocker(['cp', `${id}:/etc/passwd`, '-'], 'tar', ['-xOf', '-'])).toString();
        const group = (await pipeDocker(['cp', `${id}:/etc/group`, '-'], 'tar', ['-xOf', '-'])).toString();
        assert.match(passwd, /^nonroot:x:65532:65532:/m);
        assert.match(group, /^nonroot:x:65532:$/m);
      } finally {
        await docker('rm', id);
      }
      assert.equal(await docker('run', '--rm', bases.RUNTIME_IMAGE, '-p', 'process.versions.node.split(".")[0]'), '24');
      const slim = await docker(
        'run',
        '--rm',
        '--entrypoint',
        'sh',
        bases.BUILDER_IMAGE,
        '-c',
        'node --version && npm --version && echo shell',
      );
      assert.match(slim, /^v24\.\d+\.\d+\n\d+\.\d+\.\d+\nshell$/);
    });

    it('stays within 10% of the floor: the Node binary, its shared libraries and the bundle', async () => {
      const size = Number(await docker('image', 'inspect', '--format', '{{.Size}}', IMAGE));
      const gz = (await pipeDocker(['save', IMAGE], 'sh', ['-c', 'gzip -c | wc -c'])).toString().trim();
      const byPath = new Map(files.map((f) => [f.path, f]));
      const resolve = (p: string): TarEntry | undefined => {
        let e = byPath.get(p);
        for (let i = 0; e?.link != null && i < 10; i++) {
          e = byPath.get(e.link.startsWith('/') ? e.link : join(p, '..', e.link));
        }
        return e;
      };
      const ldd = await docker('run', '--rm', '--entrypoint', 'ldd', bases.BUILDER_IMAGE, '/usr/local/bin/node');
      const libs = [...ldd.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
      const app = files
        .filter((f) => f.path.startsWith('/app/') && f.mode.startsWith('-'))
        .reduce((n, f) => n + f.size, 0);
      let floor = byPath.get('/nodejs/bin/node')!.size + app;
      for (const lib of libs) {
        const entry = resolve(lib);
        assert.ok(entry, `${lib} is in the image`);
        floor += entry.size;
      }
      const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
      process.stdout.write(
        `# image: ${mb(size)} uncompressed, ${mb(Number(gz))} gzip-compressed; floor ${mb(floor)} ` +
          `(node + ${libs.length} shared libraries + ${(app / 1024).toFixed(0)} KiB of bundle); ratio ${(size / floor).toFixed(3)}; build ${buildSeconds.toFixed(0)} s\n`,
      );
      assert.ok(size <= floor * 1.1, `image ${mb(size)} is more than 10% above the floor ${mb(floor)}`);
    });
  },
);
