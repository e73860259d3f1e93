// `npm run verify -- HOST:PORT/REPO@sha256:… --key cosign.pub`: checks the signature over
// the digest, the identity in the signed payload, and every attestation's signature and
// subject; prints each check; exits 0 only when all hold (1 when refused, 2 on bad usage).
// A tag is accepted too, but it is resolved to a digest first and that digest is what
// gets verified: deploy by the digest that this prints. A multi-platform index is
// verified with every platform image it lists.
import { existsSync, readFileSync } from 'node:fs';
import { scriptArgs } from './lib/args.ts';
import { KeyError, loadPublicKey } from './supply-chain/keys.ts';
import { parseRef, Registry, RegistryError } from './supply-chain/registry.ts';
import { verifyReference } from './supply-chain/verify.ts';

const { values: opts, positionals } = scriptArgs('verify', { options: { key: { type: 'string' } }, allowPositionals: true });
const keyFile = opts.key;
if (positionals.length !== 1 || keyFile === undefined) {
  console.error('usage: npm run verify -- HOST:PORT/REPOSITORY@sha256:DIGEST --key cosign.pub');
  process.exit(2);
}

try {
  if (!existsSync(keyFile)) throw new KeyError(`key file ${keyFile} not found`);
  const publicKey = loadPublicKey(readFileSync(keyFile, 'utf8'));
  const ref = parseRef(positionals[0]!);
  const registry = new Registry(ref.host);
  await registry.ping();
  const outcome = await verifyReference(registry, ref, publicKey);
  for (const c of outcome.checked) console.log(`ok    ${c}`);
  for (const f of outcome.failures) console.log(`FAIL  ${f}`);
  if (outcome.failures.length > 0) {
    console.error(`verify: REFUSED ${ref.host}/${ref.repository}@${outcome.digest}: ${outcome.failures[0]}`);
    process.exit(1);
  }
  console.log(`verify: VERIFIED ${ref.host}/${ref.repository}@${outcome.digest}`);
} catch (e) {
  if (e instanceof RegistryError || e instanceof KeyError) {
    console.error(`verify: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
