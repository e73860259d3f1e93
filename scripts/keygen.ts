// `npm run keygen -- [--prefix PATH] [--force]`: a new ECDSA P-256 signing key pair in
// cosign's format, <prefix>.key (encrypted with $COSIGN_PASSWORD) and <prefix>.pub.
// The default prefix is `cosign`, as `cosign generate-key-pair` names them. Keys are
// git-ignored: never commit one.
import { existsSync, writeFileSync } from 'node:fs';
import { scriptArgs } from './lib/args.ts';
import { generateKeyPair, KeyError, passphraseFromEnv } from './supply-chain/keys.ts';

const { values: opts } = scriptArgs('keygen', {
  options: { prefix: { type: 'string' }, force: { type: 'boolean', default: false } },
});
// An empty prefix would write bare `.key` and `.pub` files: the default is taken instead.
const prefix = opts.prefix || 'cosign';
try {
  const passphrase = passphraseFromEnv();
  for (const f of [`${prefix}.key`, `${prefix}.pub`]) {
    if (existsSync(f) && !opts.force) throw new KeyError(`${f} exists; pass --force to replace it`);
  }
  const { privatePem, publicPem } = generateKeyPair(passphrase);
  writeFileSync(`${prefix}.key`, privatePem, { mode: 0o600 });
  writeFileSync(`${prefix}.pub`, publicPem);
  console.log(`keygen: private key written to ${prefix}.key (encrypted), public key written to ${prefix}.pub`);
} catch (e) {
  console.error(`keygen: ${(e as Error).message}`);
  process.exit(1);
}
