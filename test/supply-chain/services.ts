// Real services for the supply-chain tests: Debian's `docker-registry` (the CNCF
// distribution registry 2.8) and `notary-server`, each a child process on an
// ephemeral 127.0.0.1 port with its state in a temporary directory, stopped by
// `stop()`. Nothing is mocked: the Docker client pushes to them and the project's
// code talks to them over HTTP.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '../helpers.ts';

const exec = promisify(execFile);

export interface Service {
  /** host:port, always on 127.0.0.1 */
  host: string;
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `cmd`, resolves once `ready` matches its output; the match's first group is the port if `portFromLog`. */
async function startProcess(
  cmd: string,
  args: string[],
  dir: string,
  ready: RegExp,
  timeoutMs: number,
): Promise<{ child: ChildProcess; match: RegExpExecArray; log: () => string }> {
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (c: Buffer): void => {
      output += c.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited ${code}:\n${output}`));
    });
  });
  return { child, match, log: () => output };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** A distribution registry over plain HTTP on 127.0.0.1 (the Docker daemon treats 127.0.0.0/8 as insecure, so no daemon config is needed). */
export async function startRegistry(): Promise<Service> {
  const dir = await mkdtemp(join(tmpdir(), 'es11-registry-'));
  // Port 0: the registry logs the address it really bound.
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: info, accesslog: { disabled: true } }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      'http: { addr: "127.0.0.1:0", secret: es11-test-only }',
      '',
    ].join('\n'),
  );
  const { child, match, log } = await startProcess(
    'docker-registry',
    ['serve', 'config.yml'],
    dir,
    /listening on 127\.0\.0\.1:(\d+)/,
    20_000,
  );
  return {
    host: `127.0.0.1:${match[1]}`,
    dir,
    log,
    stop: async () => {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface NotaryService extends Service {
  /** https://host:port, for DOCKER_CONTENT_TRUST_SERVER */
  url: string;
  caFile: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl. */
async function makeTls(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  const ext = join(dir, 'server.ext');
  await writeFile(
    ext,
    'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  await exec('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '2',
    '-subj',
    '/CN=es11 throwaway test CA',
  ]);
  await exec('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    join(dir, 'server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await exec('openssl', [
    'x509',
    '-req',
    '-in',
    join(dir, 'server.csr'),
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { ca, cert, key };
}

/** Debian's notary-server: local signing service, memory storage, TLS from a test CA. */
export async function startNotary(): Promise<NotaryService> {
  const dir = await mkdtemp(join(tmpdir(), 'es11-notary-'));
  await mkdir(dir, { recursive: true });
  const tls = await makeTls(dir);
  let lastError: unknown;
  // A reserved port can be taken by someone else before notary binds it: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    await writeFile(
      join(dir, 'server.json'),
      JSON.stringify({
        server: { http_addr: `127.0.0.1:${port}`, tls_cert_file: tls.cert, tls_key_file: tls.key },
        trust_service: { type: 'local', key_algorithm: 'ecdsa' },
        logging: { level: 'info' },
        storage: { backend: 'memory' },
      }),
    );
    try {
      const started = await startProcess(
        'notary-server',
        ['-config', join(dir, 'server.json')],
        dir,
        /Starting on 127\.0\.0\.1:\d+/,
        20_000,
      );
      await waitForTls(port, tls.ca);
      return {
        host: `127.0.0.1:${port}`,
        url: `https://127.0.0.1:${port}`,
        caFile: tls.ca,
        dir,
        log: started.log,
        stop: async () => {
          await stopProcess(started.child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** Waits until notary answers its health endpoint over TLS with the test CA. */
async function waitForTls(port: number, caFile: string): Promise<void> {
  await waitFor(
    async () => {
      await exec('curl', [
        '-sf',
        '--max-time',
        '2',
        '--cacert',
        caFile,
        `https://127.0.0.1:${port}/_notary_server/health`,
      ]);
      return true;
    },
    20_000,
    `notary-server healthy over TLS on port ${port}`,
    200,
  );
}
