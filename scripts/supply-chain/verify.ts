// Verification of what sign.ts attaches: the classic signature over the digest (payload,
// identity, signature) and every Sigstore bundle referring to the image (bundle signature
// through @sigstore/verify, statement subject, referrer subject). Everything must hold.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { digestTag, formatRef, MEDIA, RegistryError, type Descriptor, type ImageRef, type Registry } from './registry.ts';
import { IN_TOTO_PAYLOAD_TYPE, PREDICATE, SIGNATURE_ANNOTATION, type Statement } from './sign.ts';
import { indexPlatforms, isIndex, platformName } from './image-index.ts';

export interface Outcome {
  digest: string;
  checked: string[];
  failures: string[];
  statements: Map<string, Statement>;
}

/** @sigstore/verify with one trusted public key and no transparency log or timestamp requirement. */
export function bundleVerifier(publicKey: KeyObject): Verifier {
  const root = { mediaType: '', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] } as unknown as Parameters<typeof toTrustMaterial>[0];
  // The bundle's key hint is only a name (cosign writes its own kind): the given key is
  // always the one tried, and the signature check decides.
  const trust = toTrustMaterial(root, () => ({ publicKey, validFor: () => true }));
  return new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
}

/** Verifies one bundle; returns its in-toto statement. Throws with the reason. */
export function verifyBundle(verifier: Verifier, bytes: Buffer): Statement {
  const bundle = bundleFromJSON(JSON.parse(bytes.toString('utf8')));
  verifier.verify(toSignedEntity(bundle));
  if (bundle.content.$case !== 'dsseEnvelope') throw new Error('the bundle holds no DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw new Error(`the envelope's payload type is ${env.payloadType}, not in-toto`);
  return JSON.parse(Buffer.from(env.payload).toString('utf8')) as Statement;
}

export async function verifyImage(registry: Registry, ref: ImageRef, publicKey: KeyObject, required: string[] = [PREDICATE.sign, PREDICATE.sbom, PREDICATE.provenance]): Promise<Outcome> {
  const checked: string[] = [];
  const failures: string[] = [];
  const statements = new Map<string, Statement>();
  const repo = ref.repository;
  const identity = `${ref.host}/${repo}`;

  // The digest: given, or resolved from the tag now (a tag can move; the digest cannot).
  const image = await registry.manifest(repo, ref.digest ?? ref.tag ?? 'latest');
  if (!image) throw new RegistryError(`${formatRef(ref)} is not in the registry`);
  const digest = image.digest;
  checked.push(ref.digest ? `image ${identity}@${digest} exists and its manifest hashes to that digest` : `tag ${ref.tag ?? 'latest'} resolves to ${digest} now`);

  // 1. classic signature
  const sig = await registry.manifest(repo, `${digestTag(digest)}.sig`);
  if (!sig) {
    failures.push(`no signature: ${identity}@${digest} is not signed (no ${digestTag(digest)}.sig)`);
  } else {
    const layers = ((sig.json.layers as Descriptor[] | undefined) ?? []).filter((l) => l.mediaType === MEDIA.simpleSigning);
    const reasons: string[] = [];
    let good = 0;
    for (const layer of layers) {
      const payload = await registry.blob(repo, layer.digest);
      const signature = Buffer.from(layer.annotations?.[SIGNATURE_ANNOTATION] ?? '', 'base64');
      if (!cryptoVerify('sha256', payload, { key: publicKey, dsaEncoding: 'der' }, signature)) {
        reasons.push('the signature does not verify with the given key over the payload (wrong key, or payload or signature altered)');
        continue;
      }
      let claims: { critical?: { identity?: Record<string, string>; image?: Record<string, string>; type?: string } };
      try {
        claims = JSON.parse(payload.toString('utf8')) as typeof claims;
      } catch {
        reasons.push('the signed payload is not JSON');
        continue;
      }
      const signedDigest = claims.critical?.image?.['docker-manifest-digest'];
      const signedRef = claims.critical?.identity?.['docker-reference'];
      if (claims.critical?.type !== 'cosign container image signature') { reasons.push(`the payload type is ${JSON.stringify(claims.critical?.type)}`); continue; }
      if (signedDigest !== digest) { reasons.push(`the signature is for digest ${signedDigest}, not ${digest} (copied from another image)`); continue; }
      if (signedRef !== identity) { reasons.push(`the signature names ${signedRef}, not ${identity}`); continue; }
      good++;
    }
    if (good > 0) checked.push(`signature: ECDSA-P256/SHA-256 over the simple-signing payload verifies with the key; payload digest ${digest} and identity ${identity} match (${good} of ${layers.length} signature(s))`);
    else failures.push(`signature refused: ${reasons.join('; ') || 'the signature image has no simple-signing layer'}`);
  }

  // 2. referrers (tag schema): every bundle must verify and be about this digest
  const index = await registry.manifest(repo, digestTag(digest));
  const referrers = index ? ((index.json.manifests as Descriptor[] | undefined) ?? []).filter((d) => d.artifactType === MEDIA.bundle) : [];
  const verifier = bundleVerifier(publicKey);
  const seen = new Set<string>();
  for (const d of referrers) {
    const label = d.annotations?.['dev.sigstore.bundle.predicateType'] ?? d.digest;
    try {
      const m = await registry.manifest(repo, d.digest);
      if (!m) throw new Error('the referrer manifest is missing');
      const subject = m.json.subject as Descriptor | undefined;
      if (subject?.digest !== digest) throw new Error(`the referrer's subject is ${subject?.digest}, not ${digest}`);
      const layer = (m.json.layers as Descriptor[] | undefined)?.find((l) => l.mediaType === MEDIA.bundle);
      if (!layer) throw new Error('the referrer holds no bundle');
      const stmt = verifyBundle(verifier, await registry.blob(repo, layer.digest));
      const subjects = stmt.subject.map((s) => `sha256:${s.digest.sha256}`);
      if (!subjects.includes(digest)) throw new Error(`the statement's subject is ${subjects.join(', ')}, not ${digest}`);
      if (stmt.predicateType !== label) throw new Error(`the statement's predicate type ${stmt.predicateType} differs from the referrer's annotation ${label}`);
      statements.set(stmt.predicateType, stmt);
      seen.add(stmt.predicateType);
      checked.push(`attestation ${stmt.predicateType}: bundle signature verifies with the key; subject is ${digest}`);
    } catch (e) {
      failures.push(`attestation ${label} refused: ${(e as Error).message}`);
    }
  }
  for (const p of required) if (!seen.has(p)) failures.push(`missing: no verified ${p} bundle refers to ${digest}`);
  return { digest, checked, failures, statements };
}

/**
 * A multi-platform reference: the index itself must be signed (its digest covers the
 * digests it lists), then every platform it lists must pass verifyImage in full
 * (signature, SBOM, provenance). A single image is verified as before.
 */
export async function verifyReference(registry: Registry, ref: ImageRef, publicKey: KeyObject): Promise<Outcome> {
  const top = await registry.manifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  if (!top || !isIndex(top)) return verifyImage(registry, ref, publicKey);
  const outcome = await verifyImage(registry, ref, publicKey, [PREDICATE.sign]);
  const platforms = indexPlatforms(top);
  if (platforms.length === 0) outcome.failures.push(`the index ${outcome.digest} lists no platform image`);
  else outcome.checked.push(`index ${outcome.digest} lists ${platforms.map((p) => platformName(p.platform)).join(', ')}`);
  for (const p of platforms) {
    const label = `[${platformName(p.platform)}]`;
    const child = await verifyImage(registry, { host: ref.host, repository: ref.repository, digest: p.digest }, publicKey);
    outcome.checked.push(...child.checked.map((c) => `${label} ${c}`));
    outcome.failures.push(...child.failures.map((f) => `${label} ${f}`));
  }
  return outcome;
}
