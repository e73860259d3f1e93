// Strict configuration: what a deployment hands the server is either used,
// refused with exit status 2 naming the setting, or ignored with a warning saying
// why; never silently ignored, never a server that starts and then fails.
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { runCli } from './in-process.ts';
import { loadConfig, type ConfigWarning } from '../../src/config/settings.ts';
import { selfSigned } from '../../src/transport/self-signed.ts';
import { requireTool, runTool, startTestServer, waitFor } from '../helpers.ts';
import { exitWithin, spawnMain, startedUrl } from '../hardening/process.ts';

const LOOPBACK = ['--port', '0', '--host', '127.0.0.1'];

interface Outcome {
  /** The exit status, or 'served' when the configuration was accepted and a server started. */
  code: number | 'served';
  err: string;
  out: string;
  logs: Record<string, unknown>[];
}

async function cli(
  argv: string[],
  env: Record<string, string> = {},
  onServing?: (url: string) => Promise<void>,
): Promise<Outcome> {
  const r = await runCli(argv, env, onServing);
  return { code: r.served ? 'served' : r.code, err: r.err, out: r.out, logs: r.logs };
}

const serve = (argv: string[], env: Record<string, string> = {}, onServing?: (url: string) => Promise<void>) =>
  cli([...argv, ...LOOPBACK, '--drain-timeout', '0'], env, onServing);

/** What Kubernetes injects for a Service named `echo` (port 80 → 8080) and one named `echo-https`. */
const SERVICE_LINKS: Record<string, string> = {
  ECHO_SERVICE_HOST: '10.96.0.12',
  ECHO_SERVICE_PORT: '80',
  ECHO_SERVICE_PORT_HTTP: '80',
  ECHO_PORT: 'tcp://10.96.0.12:80',
  ECHO_PORT_80_TCP: 'tcp://10.96.0.12:80',
  ECHO_PORT_80_TCP_PROTO: 'tcp',
  ECHO_PORT_80_TCP_PORT: '80',
  ECHO_PORT_80_TCP_ADDR: '10.96.0.12',
  ECHO_HTTPS_SERVICE_HOST: '10.96.0.13',
  ECHO_HTTPS_SERVICE_PORT: '443',
  ECHO_HTTPS_PORT: 'tcp://10.96.0.13:443',
  ECHO_HTTPS_PORT_443_TCP: 'tcp://10.96.0.13:443',
  ECHO_HTTPS_PORT_443_TCP_PROTO: 'tcp',
  ECHO_HTTPS_PORT_443_TCP_PORT: '443',
  ECHO_HTTPS_PORT_443_TCP_ADDR: '10.96.0.13',
};

describe('strict configuration', () => {
  it('Kubernetes service links: the server starts, warns about each setting variable holding one, and names the fix', async (t: TestContext) => {
    const s = spawnMain(LOOPBACK, { env: SERVICE_LINKS });
    t.after(() => s.kill());
    await startedUrl(s);
    const warnings = s.lines.filter((l) => l.level === 'warn' || l.level === 40);
    assert.deepEqual(
      warnings.map((w) => w.variable).sort(),
      ['ECHO_HTTPS_PORT', 'ECHO_PORT'],
      'one warning per setting variable; the other link names are quiet',
    );
    for (const w of warnings) assert.match(String(w.msg), /service link.*enableServiceLinks: false/);
    assert.ok(
      s.lines.findIndex((l) => l.variable === 'ECHO_PORT') < s.lines.findIndex((l) => l.msg === 'echo-server started'),
      'warned before the startup line',
    );
  });

  it('Kubernetes service links: with no flag, the setting keeps its default (loadConfig)', () => {
    const warnings: ConfigWarning[] = [];
    const c = loadConfig(new Map(), SERVICE_LINKS, (w) => warnings.push(w));
    assert.equal(c.port, 8080);
    assert.equal(c.httpsPort, 8443);
    assert.deepEqual(warnings.map((w) => w.variable).sort(), ['ECHO_HTTPS_PORT', 'ECHO_PORT']);
  });

  it('warns about an unknown ECHO_* variable, naming the closest known one', async () => {
    const r = await serve([], { ECHO_MAX_BODYSIZE: '1MiB', ECHO_LOGLEVEL: 'debug' });
    assert.equal(r.code, 'served');
    const byVar = new Map(r.logs.filter((l) => l.variable !== undefined).map((l) => [l.variable, String(l.msg)]));
    assert.match(byVar.get('ECHO_MAX_BODYSIZE') ?? '', /not a setting; did you mean ECHO_MAX_BODY_SIZE\?/);
    assert.match(byVar.get('ECHO_LOGLEVEL') ?? '', /did you mean ECHO_LOG_LEVEL\?/);
  });

  const refused: [name: string, argv: string[], env: Record<string, string>, message: RegExp][] = [
    [
      'a repeated flag',
      ['--max-body-size', '1MiB', '--max-body-size', '2MiB'],
      {},
      /--max-body-size is given more than once/,
    ],
    ['a repeated boolean in two spellings', ['--identity', '--no-identity'], {}, /--identity is given more than once/],
    ['an unknown flag that would swallow a value', ['--bogus'], {}, /unknown flag --bogus/],
    ['an unknown --no- flag', ['--no-bogus'], {}, /unknown flag --no-bogus/],
    [
      '--tls-cert/--tls-key without --https',
      ['--tls-cert', '/nonexistent.crt', '--tls-key', '/nonexistent.key'],
      {},
      /invalid --tls-cert: it needs --https/,
    ],
    [
      '--tls-client-auth request without --https',
      ['--tls-client-auth', 'request'],
      {},
      /invalid --tls-client-auth: it needs --https/,
    ],
    [
      '--tls-client-ca without --https',
      ['--tls-client-ca', '/nonexistent.pem'],
      {},
      /invalid --tls-client-ca: it needs --https/,
    ],
    ['--https-port without --https', ['--https-port', '0'], {}, /invalid --https-port: it needs --https/],
    [
      '--proxy-protocol https without --https',
      ['--proxy-protocol', 'http,https'],
      {},
      /invalid --proxy-protocol: it needs --https/,
    ],
    [
      'ECHO_TLS_CLIENT_AUTH without HTTPS',
      [],
      { ECHO_TLS_CLIENT_AUTH: 'request' },
      /invalid ECHO_TLS_CLIENT_AUTH: it needs --https/,
    ],
    [
      'ECHO_PROXY_PROTOCOL=https without HTTPS',
      [],
      { ECHO_PROXY_PROTOCOL: 'https' },
      /invalid ECHO_PROXY_PROTOCOL: it needs --https/,
    ],
    [
      '--echo-env **',
      ['--echo-env', '**'],
      {},
      /invalid --echo-env: "\*\*" is not a variable name or a prefix with one trailing \*/,
    ],
    ['--echo-env *_*', ['--echo-env', '*_*'], {}, /invalid --echo-env: "\*_\*"/],
    ['--echo-env *A*', ['--echo-env', 'HOSTNAME,*A*'], {}, /invalid --echo-env: "\*A\*"/],
    ['--echo-env A*B', ['--echo-env', 'A*B'], {}, /invalid --echo-env: "A\*B"/],
    ['ECHO_ECHO_ENV=**', [], { ECHO_ECHO_ENV: '**' }, /invalid ECHO_ECHO_ENV: "\*\*"/],
  ];
  for (const [name, argv, env, message] of refused) {
    it(`refuses ${name} with exit status 2, naming it`, async () => {
      const r = await serve(argv, env);
      assert.equal(r.code, 2, `accepted: ${name}`);
      assert.match(r.err, message);
      assert.doesNotMatch(r.err, /needs a value/);
    });
  }

  it('--bogus alone says "unknown flag --bogus", not "needs a value"', async () => {
    const r = await cli(['--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^echo-server: unknown flag --bogus; did you mean --/);
  });

  it('accepts --echo-env names and prefixes with one trailing *', async () => {
    const r = await serve(
      ['--echo-env', 'APP_*,HOSTNAME'],
      { APP_COLOUR: 'blue', HOSTNAME: 'pod-1', SECRET: 'x' },
      async (url) => {
        const echo = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
          env?: Record<string, string>;
        };
        assert.deepEqual(echo.env, { APP_COLOUR: 'blue', HOSTNAME: 'pod-1' });
      },
    );
    assert.equal(r.code, 'served');
  });

  it('healthcheck exits 1, never 2, on a configuration error, with the message', async () => {
    for (const argv of [
      ['healthcheck', '--port', 'eighty'],
      ['healthcheck', '--bogus'],
      ['healthcheck', '--liveness-path='],
    ]) {
      const r = await cli(argv);
      assert.equal(r.code, 1, argv.join(' '));
      assert.match(r.err, /echo-server: (invalid --port|unknown flag --bogus|healthcheck needs a liveness endpoint)/);
    }
  });

  it('healthcheck works against a server that requires the PROXY protocol (it sends a v2 LOCAL header)', async () => {
    let result: Outcome | undefined;
    let viaEnv: Outcome | undefined;
    const r = await serve(['--proxy-protocol', 'http'], {}, async (url) => {
      const port = new URL(url).port;
      result = await cli(['healthcheck', '--port', port, '--proxy-protocol', 'http', '--healthcheck-timeout', '3s']);
      // The image's HEALTHCHECK shares the server's environment: the same through variables.
      viaEnv = await cli(['healthcheck'], {
        ECHO_PORT: port,
        ECHO_PROXY_PROTOCOL: 'http',
        ECHO_HEALTHCHECK_TIMEOUT: '3s',
      });
    });
    assert.equal(r.code, 'served');
    assert.equal(result?.code, 0, result?.err);
    assert.match(result.out, /healthy: .*answered 200/);
    assert.equal(viaEnv?.code, 0, viaEnv?.err);
  });

  it('a busy HTTPS port is blamed on the HTTPS listener and its port, not the HTTP one', async (t: TestContext) => {
    const busy: NetServer = createServer();
    busy.listen(0, '127.0.0.1');
    await once(busy, 'listening');
    t.after(() => busy.close());
    const port = (busy.address() as { port: number }).port;
    const s = spawnMain([...LOOPBACK, '--https', '--https-port', String(port)]);
    t.after(() => s.kill());
    assert.deepEqual(await exitWithin(s, 15_000), { code: 2, signal: null });
    const fatal = s.lines.find((l) => l.level === 'fatal' || l.level === 60);
    assert.match(
      String(fatal?.msg),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1 port ${port} \\(https listener, --https-port\\)`),
    );
  });
});

describe('strict configuration: certificate material', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-strict-tls-'));
    const a = await selfSigned(['localhost']);
    const b = await selfSigned(['localhost']);
    const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    });
    const encrypted = createPrivateKey(a.key).export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: 'secret',
    });
    await Promise.all([
      writeFile(file('a.crt'), a.cert),
      writeFile(file('a.key'), a.key),
      writeFile(file('b.crt'), b.cert),
      writeFile(file('b.key'), b.key),
      writeFile(file('rsa.key'), rsaKey),
      writeFile(file('enc.key'), encrypted),
      writeFile(file('empty-ca.pem'), '# our CA bundle goes here\n'),
      writeFile(file('key-as-ca.pem'), a.key),
      writeFile(file('ca.pem'), a.cert),
    ]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const bad: [name: string, args: () => string[], message: RegExp][] = [
    [
      'a certificate and key of different types (EC certificate, RSA key)',
      () => ['--tls-cert', file('a.crt'), '--tls-key', file('rsa.key')],
      /invalid --tls-key: .*not the private key .*\(key type rsa, certificate key type ec\)/,
    ],
    [
      'a certificate and key of the same type that do not match',
      () => ['--tls-cert', file('a.crt'), '--tls-key', file('b.key')],
      /invalid --tls-key: .*not the private key .*\(both ec, but of different key pairs\)/,
    ],
    [
      'an encrypted key',
      () => ['--tls-cert', file('a.crt'), '--tls-key', file('enc.key')],
      /invalid --tls-key: .*is encrypted/,
    ],
    [
      'a --tls-client-ca file with no certificate in it',
      () => ['--tls-client-auth', 'request', '--tls-client-ca', file('empty-ca.pem')],
      /invalid --tls-client-ca: no PEM certificate/,
    ],
    [
      'a --tls-client-ca file holding a key, not a certificate',
      () => ['--tls-client-auth', 'request', '--tls-client-ca', file('key-as-ca.pem')],
      /invalid --tls-client-ca: no PEM certificate/,
    ],
  ];
  for (const [name, args, message] of bad) {
    it(`refuses ${name} at start with exit status 2, naming the setting`, async () => {
      const r = await serve(['--https', '--https-port', '0', ...args()]);
      assert.equal(r.code, 2, `accepted: ${name}`);
      assert.match(r.err, message);
    });
  }

  it('refuses an RSA certificate with an EC key (the pair of the report) with exit status 2', async (t: TestContext) => {
    if (!requireTool(t, 'openssl')) return;
    const made = await runTool('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      file('rsa-own.key'),
      '-out',
      file('rsa.crt'),
      '-subj',
      '/CN=localhost',
      '-days',
      '2',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const r = await serve(['--https', '--https-port', '0', '--tls-cert', file('rsa.crt'), '--tls-key', file('a.key')]);
    assert.equal(r.code, 2, 'accepted an RSA certificate with an EC key');
    assert.match(r.err, /invalid --tls-key: .*\(key type ec, certificate key type rsa\)/);
  });

  it('accepts a matching pair and a CA bundle', async () => {
    const r = await serve([
      '--https',
      '--https-port',
      '0',
      '--tls-cert',
      file('a.crt'),
      '--tls-key',
      file('a.key'),
      '--tls-client-auth',
      'request',
      '--tls-client-ca',
      file('ca.pem'),
    ]);
    assert.equal(r.code, 'served', r.err);
  });

  it('on reload, a mismatched pair is refused (logged) and the previous certificate keeps serving', async () => {
    await copyFile(file('a.crt'), file('live.crt'));
    await copyFile(file('a.key'), file('live.key'));
    const t = await startTestServer({ https: true, httpsPort: 0, tlsCert: file('live.crt'), tlsKey: file('live.key') });
    try {
      const port = t.server.listener.httpsAddress!.port;
      const fingerprint = () =>
        new Promise<string>((resolve, reject) => {
          const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
            resolve(s.getPeerX509Certificate()!.fingerprint256);
            s.end();
          });
          s.on('error', reject);
        });
      const before = await fingerprint();
      // The key rotated to another type while the certificate stayed: a bad pair.
      await copyFile(file('rsa.key'), file('live.key'));
      await waitFor(
        () =>
          t.logs.lines.some(
            (l) =>
              l.msg === 'TLS certificate reload failed; keeping the previous one' ||
              l.msg === 'TLS certificate reloaded',
          ),
        10_000,
      );
      const failed = t.logs.messages('TLS certificate reload failed; keeping the previous one');
      assert.equal(failed.length, 1, 'the bad pair was not refused');
      assert.match(String(failed[0]!.err), /invalid --tls-key/);
      assert.equal(await fingerprint(), before, 'handshakes still succeed with the previous certificate');
    } finally {
      await t.close();
    }
  });
});
