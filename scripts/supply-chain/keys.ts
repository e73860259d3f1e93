// Signing keys in cosign's on-disk format, so a key made here works with cosign and
// the reverse. The private key is PKCS #8 DER, encrypted as go-securesystemslib's
// `encrypted` package does (cosign's own code path): scrypt (N=65536, r=8, p=1,
// 32-byte salt) derives a 32-byte key, NaCl secretbox (XSalsa20-Poly1305, 24-byte
// nonce) seals the DER, and the JSON of {kdf, cipher, ciphertext} is the body of
// an `ENCRYPTED SIGSTORE PRIVATE KEY` PEM block. The public key is SPKI PEM.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scryptSync,
  type KeyObject,
} from 'node:crypto';
import { secretbox } from '@noble/ciphers/salsa.js';

export const PRIVATE_PEM_TYPES = ['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY'] as const;

/** The parameter sets go-securesystemslib accepts when decrypting (legacy, standard, OWASP). */
const ACCEPTED_SCRYPT = [32768, 65536, 131072];
const WRITE_SCRYPT = { N: 65536, r: 8, p: 1 };

export class KeyError extends Error {}

interface Encrypted {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

function scryptKey(passphrase: string, salt: Buffer, params: { N: number; r: number; p: number }): Buffer {
  // scrypt needs 128 * N * r bytes; Node's default ceiling (32 MiB) is below cosign's standard N.
  return scryptSync(Buffer.from(passphrase, 'utf8'), salt, 32, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * 1024 * 1024,
  });
}

export function toPem(type: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

export function fromPem(text: string): { type: string; der: Buffer } {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!m) throw new KeyError('not a PEM file');
  return { type: m[1]!, der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') };
}

/** Encrypts `plaintext` exactly as go-securesystemslib's encrypted.Encrypt does (field order included). */
export function encrypt(plaintext: Buffer, passphrase: string): Buffer {
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const sealed = secretbox(scryptKey(passphrase, salt, WRITE_SCRYPT), nonce).seal(plaintext);
  const doc: Encrypted = {
    kdf: { name: 'scrypt', params: WRITE_SCRYPT, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  return Buffer.from(JSON.stringify(doc));
}

export function decrypt(body: Buffer, passphrase: string): Buffer {
  let doc: Encrypted;
  try {
    doc = JSON.parse(body.toString('utf8')) as Encrypted;
  } catch {
    throw new KeyError('the key body is not the encrypted JSON cosign writes');
  }
  if (doc.kdf?.name !== 'scrypt') throw new KeyError(`unknown key derivation ${JSON.stringify(doc.kdf?.name)}`);
  if (doc.cipher?.name !== 'nacl/secretbox') throw new KeyError(`unknown cipher ${JSON.stringify(doc.cipher?.name)}`);
  const { N, r, p } = doc.kdf.params;
  if (!ACCEPTED_SCRYPT.includes(N) || r !== 8 || p !== 1) throw new KeyError('unsupported scrypt parameters');
  const nonce = Buffer.from(doc.cipher.nonce, 'base64');
  if (nonce.length !== 24) throw new KeyError('the nonce is not 24 bytes');
  try {
    const key = scryptKey(passphrase, Buffer.from(doc.kdf.salt, 'base64'), { N, r, p });
    return Buffer.from(secretbox(key, nonce).open(Buffer.from(doc.ciphertext, 'base64')));
  } catch {
    throw new KeyError('wrong passphrase (the key did not decrypt)');
  }
}

/** A new ECDSA P-256 key pair: the encrypted private PEM and the SPKI public PEM. */
export function generateKeyPair(passphrase: string): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return {
    privatePem: toPem(PRIVATE_PEM_TYPES[0], encrypt(der, passphrase)),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

export function loadPrivateKey(pemText: string, passphrase: string): KeyObject {
  const { type, der } = fromPem(pemText);
  if (!(PRIVATE_PEM_TYPES as readonly string[]).includes(type))
    throw new KeyError(`unsupported PEM type "${type}" (want ${PRIVATE_PEM_TYPES[0]})`);
  const key = createPrivateKey({ key: decrypt(der, passphrase), format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new KeyError('the key is not ECDSA P-256');
  return key;
}

export function loadPublicKey(pemText: string): KeyObject {
  try {
    const key = createPublicKey({ key: pemText, format: 'pem' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      throw new KeyError('the public key is not ECDSA P-256');
    return key;
  } catch (e) {
    if (e instanceof KeyError) throw e;
    throw new KeyError('not a PEM public key');
  }
}

/** A stable short name for a public key: sha256 of its SPKI DER, as the bundle's key hint. */
export function keyHint(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ format: 'der', type: 'spki' }))
    .digest('hex');
}

/** The passphrase from COSIGN_PASSWORD, as cosign reads it; an empty value is allowed, an unset one is not. */
export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const value = env.COSIGN_PASSWORD;
  if (value === undefined)
    throw new KeyError('COSIGN_PASSWORD is not set (the key passphrase comes only from the environment)');
  return value;
}
