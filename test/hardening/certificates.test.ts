// Certificate files are read without trusting what the path points to. A
// FIFO nobody writes to, /dev/zero or a 300 MB file given as --tls-cert must be
// refused at once (exit 2, naming the flag) without blocking or ballooning; and a
// certificate replaced by a FIFO at run time must be refused with a log line while
// the server keeps serving the previous certificate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { connect } from 'node:tls';
import { requireTool, runTool } from '../helpers.ts';
import { exitWithin, get, rssMiB, spawnMain, startedUrl, until, type Server } from './process.ts';

/** A refusal must come this fast; before the fix a FIFO blocked open() forever. */
const PROMPT_MS = 5000;
/** Far above the idle server (about 80 MiB), far below what reading /dev/zero or 300 MB costs. */
const RSS_LIMIT_MIB = 250;

/**
 * Samples the process's memory until it exits; kills it above `RSS_LIMIT_MIB` so a
 * regression cannot take the machine's memory (before the fix, /dev/zero reached 3 GB).
 */
function watchMemory(s: Server): { peak(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(s.pid));
    if (peak > RSS_LIMIT_MIB) s.kill();
  }, 25);
  void s.exit.then(() => clearInterval(timer));
  return { peak: () => peak };
}

/** Subject CN and SHA-256 fingerprint of the certificate an HTTPS port presents. */
function presented(port: number): Promise<{ cn: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost', timeout: 2000 },
      () => {
        const cert = socket.getPeerCertificate();
        resolve({ cn: String(cert.subject.CN), fingerprint: cert.fingerprint256 });
        socket.end();
      },
    );
    socket.on('timeout', () => socket.destroy(new Error('TLS handshake not done within 2 s')));
    socket.on('error', reject);
  });
}

/** Status of one HTTPS request (certificate not verified), within 2 s. */
function httpsStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(
      {
        host: '127.0.0.1',
        port,
        path,
        rejectUnauthorized: false,
        servername: 'localhost',
        agent: false,
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('HTTPS request not answered within 2 s')));
    req.on('error', reject);
  });
}

describe('certificate files are read safely', () => {
  let dir: string;
  let key: string;
  let cert: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-certs-'));
    key = join(dir, 'tls.key');
    cert = join(dir, 'tls.crt');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A valid certificate and key made by openssl (once), for the file that is not under test. */
  async function makeCertificate(ctx: TestContext): Promise<boolean> {
    if (!requireTool(ctx, 'openssl')) return false;
    const r = await runTool('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=echo-reload-test',
      '-days',
      '2',
    ]);
    assert.equal(r.code, 0, r.stderr);
    return true;
  }

  /** Starts HTTPS with `certPath` as --tls-cert; it must exit 2 promptly, staying small. */
  async function refused(t: TestContext, certPath: string): Promise<{ stderr: string; peak: number }> {
    const s = spawnMain([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--https',
      '--https-port',
      '0',
      '--tls-cert',
      certPath,
      '--tls-key',
      key,
    ]);
    t.after(() => s.kill());
    const memory = watchMemory(s);
    const start = performance.now();
    const exit = await exitWithin(s, PROMPT_MS);
    assert.ok(memory.peak() <= RSS_LIMIT_MIB, `resident memory reached ${memory.peak().toFixed(0)} MiB (killed)`);
    assert.ok(
      exit !== null,
      `still running after ${PROMPT_MS} ms (peak ${memory.peak().toFixed(0)} MiB): ${s.stderr()}`,
    );
    assert.deepEqual(exit, { code: 2, signal: null }, s.stderr());
    assert.match(s.stderr(), /invalid --tls-cert/);
    t.diagnostic(`exit 2 after ${(performance.now() - start).toFixed(0)} ms, peak RSS ${memory.peak().toFixed(0)} MiB`);
    return { stderr: s.stderr(), peak: memory.peak() };
  }

  it('a FIFO nobody writes to: exit 2 at once, naming --tls-cert', async (t) => {
    if (!(await makeCertificate(t))) return;
    const fifo = join(dir, 'fifo.crt');
    execFileSync('mkfifo', [fifo]);
    assert.match((await refused(t, fifo)).stderr, /not a regular file/);
  });

  it('/dev/zero: exit 2 at once, memory never grows', async (t) => {
    if (!(await makeCertificate(t))) return;
    assert.match((await refused(t, '/dev/zero')).stderr, /not a regular file/);
  });

  it('a 300 MB (sparse) file: exit 2 at once, saying it is too large, without reading it', async (t) => {
    if (!(await makeCertificate(t))) return;
    const big = join(dir, 'big.crt');
    const f = await open(big, 'w');
    await f.truncate(300 * 1024 * 1024);
    await f.close();
    assert.match((await refused(t, big)).stderr, /larger than \d+ bytes/);
  });

  it('reload: a certificate replaced by a FIFO is refused with a log line; HTTPS keeps the previous certificate, and loads the next valid one', async (t) => {
    if (!(await makeCertificate(t))) return;
    const s = spawnMain([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--https',
      '--https-port',
      '0',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ]);
    t.after(() => s.kill());
    const url = await startedUrl(s);
    const started = s.lines.find((l) => l.msg === 'echo-server started')!;
    const httpsPort = Number(new URL((started.listeners as string[])[1]!).port);
    const before = await presented(httpsPort);
    assert.equal(before.cn, 'echo-reload-test');

    await rm(cert);
    execFileSync('mkfifo', [cert]);
    // The files are polled every second, then read 200 ms after the last change.
    const failed = () => s.lines.some((l) => l.msg === 'TLS certificate reload failed; keeping the previous one');
    await until(() => failed() || s.exited, 8000, 'the reload failure is logged').catch(() => {});
    assert.equal((await get(`${url}/livez`, 2000)).status, 200, 'the server still answers');
    assert.ok(failed(), 'logged: TLS certificate reload failed; keeping the previous one');
    assert.match(String(s.lines.find((l) => /reload failed/.test(String(l.msg)))!.err), /not a regular file/);
    assert.deepEqual(await presented(httpsPort), before, 'the previous certificate is still served');
    assert.equal(await httpsStatus(httpsPort, '/after-reload'), 200);

    // The watch survives the failure: a valid certificate put back is loaded.
    await rm(cert);
    const r = await runTool('openssl', [
      'req',
      '-x509',
      '-key',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=echo-reload-next',
      '-days',
      '2',
    ]);
    assert.equal(r.code, 0, r.stderr);
    await until(
      () => s.lines.some((l) => l.msg === 'TLS certificate reloaded'),
      8000,
      'the next certificate is loaded',
    );
    assert.equal((await presented(httpsPort)).cn, 'echo-reload-next');
  });
});
