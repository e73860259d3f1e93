// `npm run keygen -- [--prefix PATH] [--force]`: a new ECDSA P-256 signing key pair in
// cosign's format, <prefix>.key (encrypted with $COSIGN_PASSWORD) and <prefix>.pub.
// The default prefix is `cosign`, as `cosign generate-key-pair` names them. Keys are
// git-ignored: never commit one.
import { existsSync, writeFileSync } from 'node:fs';
import { generateKeyPair, KeyError, passphraseFromEnv } from './supply-chain/keys.ts';

const args = process.argv.slice(2);
const i = args.indexOf('--prefix');
const prefix = i >= 0 && args[i + 1] ? args[i + 1]! : 'cosign';
const unknown = args.filter((a, n) => a !== '--force' && a !== '--prefix' && !(n === i + 1 && i >= 0));
if (unknown.length > 0) {
  console.error(`keygen: unknown argument(s) ${unknown.join(' ')}`);
  process.exit(2);
}
try {
  const passphrase = passphraseFromEnv();
  for (const f of [`${prefix}.key`, `${prefix}.pub`]) {
    if (existsSync(f) && !args.includes('--force')) throw new KeyError(`${f} exists; pass --force to replace it`);
  }
  const { privatePem, publicPem } = generateKeyPair(passphrase);
  writeFileSync(`${prefix}.key`, privatePem, { mode: 0o600 });
  writeFileSync(`${prefix}.pub`, publicPem);
  console.log(`keygen: private key written to ${prefix}.key (encrypted), public key written to ${prefix}.pub`);
} catch (e) {
  console.error(`keygen: ${(e as Error).message}`);
  process.exit(1);
}
