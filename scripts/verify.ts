// `npm run verify -- HOST:PORT/REPO@sha256:… --key cosign.pub`: checks the signature over
// the digest, the identity in the signed payload, and every attestation's signature and
// subject; prints each check; exits 0 only when all hold (1 when refused, 2 on bad usage).
// A tag is accepted too, but it is resolved to a digest first and that digest is what
// gets verified: deploy by the digest that this prints. A multi-platform index is
// verified with every platform image it lists.
// The registry is not trusted with resources: the whole run ends by `--timeout SECONDS`
// (default 120), and every read is bounded (see registry.ts).
import { existsSync, readFileSync } from 'node:fs';
import { scriptArgs, usageError } from './lib/args.ts';
import { KeyError, loadPublicKey } from './supply-chain/keys.ts';
import { parseRef, Registry, RegistryError } from './supply-chain/registry.ts';
import { verifyReference } from './supply-chain/verify.ts';

const { values: opts, positionals } = scriptArgs('verify', {
  options: { key: { type: 'string' }, timeout: { type: 'string', default: '120' } },
  allowPositionals: true,
});
const keyFile = opts.key;
if (positionals.length !== 1 || keyFile === undefined) {
  console.error('usage: npm run verify -- HOST:PORT/REPOSITORY@sha256:DIGEST --key cosign.pub [--timeout SECONDS]');
  process.exit(2);
}
const timeout = Number(opts.timeout);
if (!/^\d+$/.test(opts.timeout) || timeout < 1 || timeout > 3600)
  usageError('verify', `--timeout ${opts.timeout}: a whole number of seconds from 1 to 3600`);

try {
  if (!existsSync(keyFile)) throw new KeyError(`key file ${keyFile} not found`);
  const publicKey = loadPublicKey(readFileSync(keyFile, 'utf8'));
  const ref = parseRef(positionals[0]!);
  const registry = new Registry(ref.host, { deadlineMs: timeout * 1000 });
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
  // Anything else is a bug here, or a document no check above foresaw: one line, not a dump.
  console.error(`verify: REFUSED, unexpected error: ${String((e as Error).message ?? e).slice(0, 300)}`);
  process.exit(1);
}
