// cosign's key format: compatibility with the reference implementation, the keygen
// command, and refusals (wrong passphrase, no passphrase, no overwrite).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { sign, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { decrypt, fromPem, loadPrivateKey, loadPublicKey } from '../../scripts/supply-chain/keys.ts';

const exec = promisify(execFile);

/** Runs `npm run keygen` (the script itself) and returns exit code and output. */
async function keygen(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['scripts/keygen.ts', ...args], { env });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout + err.stderr };
  }
}

describe('cosign key format', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'es11-keys-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('decrypts the known-answer vector published with go-securesystemslib (the code cosign uses)', () => {
    // Legacy-strength scrypt (N=32768) + NaCl secretbox, passphrase "supersecret".
    const vector =
      '{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}';
    assert.equal(decrypt(Buffer.from(vector), 'supersecret').toString(), 'reallyimportant');
    assert.throws(() => decrypt(Buffer.from(vector), 'supersecreT'), /wrong passphrase/);
  });

  it('npm run keygen writes an encrypted ECDSA P-256 key and an SPKI public key that openssl reads', async () => {
    const prefix = join(dir, 'cosign');
    const res = await keygen(['--prefix', prefix], { ...process.env, COSIGN_PASSWORD: 'correct horse' });
    assert.equal(res.code, 0, res.out);
    const privatePem = await readFile(`${prefix}.key`, 'utf8');
    const publicPem = await readFile(`${prefix}.pub`, 'utf8');
    assert.equal((await stat(`${prefix}.key`)).mode & 0o777, 0o600);
    const { type, der } = fromPem(privatePem);
    assert.equal(type, 'ENCRYPTED SIGSTORE PRIVATE KEY');
    // The body is the JSON go-securesystemslib writes, in its field order, with cosign's default (standard) scrypt.
    const body = JSON.parse(der.toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['kdf', 'cipher', 'ciphertext']);
    assert.deepEqual(body.kdf, {
      name: 'scrypt',
      params: { N: 65536, r: 8, p: 1 },
      salt: (body.kdf as { salt: string }).salt,
    });
    assert.equal(Buffer.from((body.kdf as { salt: string }).salt, 'base64').length, 32);
    assert.equal((body.cipher as { name: string }).name, 'nacl/secretbox');
    assert.equal(Buffer.from((body.cipher as { nonce: string }).nonce, 'base64').length, 24);
    assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
    const { stdout } = await exec('openssl', ['pkey', '-pubin', '-in', `${prefix}.pub`, '-noout', '-text']);
    assert.match(stdout, /NIST CURVE: P-256|prime256v1/);

    const key = loadPrivateKey(privatePem, 'correct horse');
    const sig = sign('sha256', Buffer.from('x'), key);
    assert.ok(
      verify('sha256', Buffer.from('x'), loadPublicKey(publicPem), sig),
      'the private key matches the public key',
    );
    assert.throws(() => loadPrivateKey(privatePem, 'wrong horse'), /wrong passphrase/);
  });

  it('refuses without COSIGN_PASSWORD, and never overwrites a key unless told', async () => {
    const env = { ...process.env };
    delete env.COSIGN_PASSWORD;
    const none = await keygen(['--prefix', join(dir, 'nopass')], env);
    assert.equal(none.code, 1);
    assert.match(none.out, /^keygen: COSIGN_PASSWORD is not set/);
    await writeFile(join(dir, 'kept.key'), 'precious');
    const again = await keygen(['--prefix', join(dir, 'kept')], { ...process.env, COSIGN_PASSWORD: 'x' });
    assert.equal(again.code, 1);
    assert.match(again.out, /kept\.key exists; pass --force/);
    assert.equal(await readFile(join(dir, 'kept.key'), 'utf8'), 'precious');
  });
});
