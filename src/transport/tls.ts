// TLS material and the TLS details of a connection.
// With certificate files, they are read at start and re-read when they change on
// disk (cert-manager style rotation) without dropping connections. Without them, a
// self-signed certificate is made in memory at start-up: never baked into an image,
// never written to disk, so no two deployments share a private key.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { constants, watchFile, unwatchFile } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { TLSSocket, SecureContextOptions } from 'node:tls';
import type { Config } from '../config/settings.ts';
import { ConfigError } from '../config/settings.ts';
import type { TlsInfo } from '../core/facts.ts';
import type { Logger } from '../ops/logger.ts';

export interface TlsMaterial {
  /** Options for tls.createServer / setSecureContext. */
  context: SecureContextOptions;
  /** Describes where the certificate came from, for the startup log. */
  source: string;
  /** Starts watching the files; calls `apply` with fresh options after a change. */
  watch(apply: (context: SecureContextOptions) => void, logger: Logger): () => void;
}

/** PEM files are a few KiB; a chain with many intermediates stays far below this. */
export const MAX_PEM_FILE = 1024 * 1024;

/**
 * Reads a certificate or key file without trusting what the path points to: it is
 * opened non-blocking (a FIFO would otherwise block the whole process in open()),
 * must be a regular file (not /dev/zero or a directory), and at most MAX_PEM_FILE
 * bytes, read asynchronously.
 */
async function read(path: string, what: string): Promise<Buffer> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_PEM_FILE) throw new Error(`larger than ${MAX_PEM_FILE} bytes`);
    const buf = Buffer.alloc(MAX_PEM_FILE + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_PEM_FILE) throw new Error(`larger than ${MAX_PEM_FILE} bytes`);
    }
    return Buffer.from(buf.subarray(0, n));
  } catch (err) {
    throw new ConfigError(`invalid ${what}: cannot read ${path}: ${(err as Error).message}`);
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Every PEM certificate in a file; a file with none (or an unreadable one) is refused. */
function certificates(pem: Buffer, what: string, path: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0)
    throw new ConfigError(`invalid ${what}: no PEM certificate (-----BEGIN CERTIFICATE-----) in ${path}`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(
        `invalid ${what}: certificate ${i + 1} in ${path} cannot be parsed: ${(err as Error).message}`,
      );
    }
  });
}

function privateKey(pem: Buffer, path: string): KeyObject {
  // OpenSSL reports a missing passphrase as "interrupted or cancelled": say what it is.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/.test(pem.toString('latin1'))) {
    throw new ConfigError(
      `invalid --tls-key: ${path} is encrypted; give an unencrypted key (for example: openssl pkey -in ${path} -out plain.key)`,
    );
  }
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(`invalid --tls-key: ${path} holds no readable PEM private key: ${(err as Error).message}`);
  }
}

/**
 * Checks certificate, key and CA before they are used, so a bad pair is refused at
 * start (exit 2, naming the setting) or on reload (the previous pair stays), instead
 * of being accepted and failing every handshake, or failing later as "cannot listen".
 */
function checkMaterial(context: SecureContextOptions, config: Config): void {
  if (context.cert !== undefined && config.tlsCert !== '') {
    const [leaf] = certificates(context.cert as Buffer, '--tls-cert', config.tlsCert);
    const key = privateKey(context.key as Buffer, config.tlsKey);
    if (!leaf!.checkPrivateKey(key)) {
      const [k, c] = [key.asymmetricKeyType, leaf!.publicKey.asymmetricKeyType];
      throw new ConfigError(
        `invalid --tls-key: ${config.tlsKey} is not the private key of the first certificate in ${config.tlsCert} (${k === c ? `both ${k}, but of different key pairs` : `key type ${k}, certificate key type ${c}`})`,
      );
    }
  }
  try {
    process.getBuiltinModule('node:tls').createSecureContext(context);
  } catch (err) {
    const what =
      context.ca !== undefined && config.tlsCert === '' ? '--tls-client-ca' : '--tls-cert/--tls-key/--tls-client-ca';
    throw new ConfigError(`invalid ${what}: OpenSSL refuses the material: ${(err as Error).message}`);
  }
}

async function readCa(path: string): Promise<Buffer> {
  const ca = await read(path, '--tls-client-ca');
  certificates(ca, '--tls-client-ca', path);
  return ca;
}

export async function loadTlsMaterial(config: Config): Promise<TlsMaterial> {
  const clientAuth: SecureContextOptions = config.tlsClientCa === '' ? {} : { ca: await readCa(config.tlsClientCa) };
  if (config.tlsCert === '') {
    // A module of its own (and a file of its own in the bundle): the X.509 library
    // is most of the code, and only a server without certificate files needs it.
    const { selfSigned } = await import('./self-signed.ts');
    const { cert, key } = await selfSigned([...new Set(['localhost', hostname()])]);
    checkMaterial({ cert, key, ...clientAuth }, config);
    return { context: { cert, key, ...clientAuth }, source: 'self-signed, in memory', watch: () => () => {} };
  }
  const load = async (): Promise<SecureContextOptions> => {
    const context = {
      cert: await read(config.tlsCert, '--tls-cert'),
      key: await read(config.tlsKey, '--tls-key'),
      ...clientAuth,
    };
    checkMaterial(context, config);
    return context;
  };
  return {
    context: await load(),
    source: config.tlsCert,
    watch(apply, logger) {
      let timer: NodeJS.Timeout | undefined;
      const changed = () => {
        // Both files usually change together; wait for the second before reading.
        clearTimeout(timer);
        timer = setTimeout(() => {
          load()
            .then((context) => {
              apply(context);
              logger.info({ cert: config.tlsCert }, 'TLS certificate reloaded');
            })
            .catch((err: unknown) => {
              logger.error({ err: (err as Error).message }, 'TLS certificate reload failed; keeping the previous one');
            });
        }, 200);
      };
      const files = [config.tlsCert, config.tlsKey];
      for (const f of files) watchFile(f, { interval: 1000, persistent: false }, changed);
      return () => {
        clearTimeout(timer);
        for (const f of files) unwatchFile(f, changed);
      };
    },
  };
}

/**
 * A certificate date as ISO 8601, or as OpenSSL gave it when it is no date at all: a
 * client certificate is the client's to forge, and in `request` mode it is accepted
 * unverified, so its validity fields may be anything ("Bad time value").
 */
function isoDate(text: string): string {
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toISOString();
}

export function describeTls(socket: TLSSocket): TlsInfo {
  const cert = socket.getPeerX509Certificate();
  const servername = (socket as TLSSocket & { servername?: string | false }).servername;
  return {
    version: socket.getProtocol(),
    cipher: socket.getCipher()?.name ?? null,
    sni: typeof servername === 'string' ? servername : null,
    alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
    clientCertificate:
      cert === undefined
        ? null
        : {
            subject: cert.subject.replace(/\n/g, ', '),
            issuer: cert.issuer.replace(/\n/g, ', '),
            subjectAltName: cert.subjectAltName ?? null,
            validFrom: isoDate(cert.validFrom),
            validTo: isoDate(cert.validTo),
            serialNumber: cert.serialNumber,
            fingerprint256: cert.fingerprint256,
            verified: socket.authorized,
            verifyError: socket.authorized ? null : String(socket.authorizationError ?? 'not verified'),
          },
  };
}
