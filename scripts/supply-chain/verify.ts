// Verification of what sign.ts attaches: the classic signature over the digest (payload,
// identity, signature) and every Sigstore bundle referring to the image (bundle signature
// through @sigstore/verify, statement subject, referrer subject). Everything must hold.
// The registry is an adversary here: a tag is read once and everything after that is
// read by digest, every descriptor is checked before its digest goes into a URL, and the
// number of signatures, referrers and platforms read is bounded.
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import {
  digestTag,
  formatRef,
  MEDIA,
  RegistryError,
  type Descriptor,
  type ImageRef,
  type Manifest,
  type Registry,
} from './registry.ts';
import { IN_TOTO_PAYLOAD_TYPE, PREDICATE, SIGNATURE_ANNOTATION, type Statement } from './sign.ts';
import { indexPlatforms, isIndex, platformName } from './image-index.ts';

/** How many entries of each list verify reads; a document listing more is refused whole. */
export const MAX_ENTRIES = { signatures: 16, referrers: 32, platforms: 16 } as const;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * The descriptors a manifest lists in `field`, each checked: a sha256 digest (it goes
 * into a URL), a non-negative integer size (it bounds the read), a string media type.
 */
export function descriptorsOf(m: Manifest, field: 'layers' | 'manifests', what: string): Descriptor[] {
  const list = m.json[field];
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new RegistryError(`${what} ${m.digest}: "${field}" is not a list`);
  return list.map((d: unknown, i) => {
    const x = d as Partial<Descriptor> | null;
    if (
      typeof x !== 'object' ||
      x === null ||
      typeof x.digest !== 'string' ||
      !DIGEST.test(x.digest) ||
      !Number.isSafeInteger(x.size) ||
      x.size! < 0 ||
      typeof x.mediaType !== 'string'
    ) {
      throw new RegistryError(
        `${what} ${m.digest}: entry ${i} of "${field}" is not a valid descriptor (sha256 digest, size, media type)`,
      );
    }
    return x as Descriptor;
  });
}

export interface Outcome {
  digest: string;
  checked: string[];
  failures: string[];
  statements: Map<string, Statement>;
}

/** @sigstore/verify with one trusted public key and no transparency log or timestamp requirement. */
export function bundleVerifier(publicKey: KeyObject): Verifier {
  const root = {
    mediaType: '',
    tlogs: [],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  } as unknown as Parameters<typeof toTrustMaterial>[0];
  // The bundle's key hint is only a name (cosign writes its own kind): the given key is
  // always the one tried, and the signature check decides.
  const trust = toTrustMaterial(root, () => ({ publicKey, validFor: () => true }));
  return new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
}

/** Verifies one bundle; returns its in-toto statement. Throws with the reason. */
export function verifyBundle(verifier: Verifier, bytes: Buffer): Statement {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(`the bundle is not JSON (${bytes.length} bytes)`);
  }
  const bundle = bundleFromJSON(json);
  verifier.verify(toSignedEntity(bundle));
  if (bundle.content.$case !== 'dsseEnvelope') throw new Error('the bundle holds no DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new Error(`the envelope's payload type is ${env.payloadType}, not in-toto`);
  let stmt: Statement;
  try {
    stmt = JSON.parse(Buffer.from(env.payload).toString('utf8')) as Statement;
  } catch {
    throw new Error('the signed statement is not JSON');
  }
  if (
    typeof stmt !== 'object' ||
    stmt === null ||
    !Array.isArray(stmt.subject) ||
    typeof stmt.predicateType !== 'string'
  )
    throw new Error('the signed statement is not an in-toto statement (subject, predicateType)');
  return stmt;
}

/** The manifest `ref` names, read once: by its digest, or by its tag (resolved now, and only here). */
export async function resolve(registry: Registry, ref: ImageRef): Promise<Manifest> {
  const image = await registry.manifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
  if (!image) throw new RegistryError(`${formatRef(ref)} is not in the registry`);
  return image;
}

/**
 * Verifies `image`, the manifest `ref` resolved to (read once by `resolve`, never again
 * by its tag: a registry may answer the same tag differently on the next read).
 */
export async function verifyImage(
  registry: Registry,
  ref: ImageRef,
  image: Manifest,
  publicKey: KeyObject,
  required: string[] = [PREDICATE.sign, PREDICATE.sbom, PREDICATE.provenance],
): Promise<Outcome> {
  const checked: string[] = [];
  const failures: string[] = [];
  const statements = new Map<string, Statement>();
  const repo = ref.repository;
  const identity = `${ref.host}/${repo}`;
  const digest = image.digest;
  checked.push(
    ref.digest
      ? `image ${identity}@${digest} exists and its manifest hashes to that digest`
      : `tag ${ref.tag ?? 'latest'} resolves to ${digest} now; everything after this is read by that digest`,
  );

  // 1. classic signature
  const sig = await registry.manifest(repo, `${digestTag(digest)}.sig`);
  if (!sig) {
    failures.push(`no signature: ${identity}@${digest} is not signed (no ${digestTag(digest)}.sig)`);
  } else {
    const layers = descriptorsOf(sig, 'layers', 'the signature image').filter(
      (l) => l.mediaType === MEDIA.simpleSigning,
    );
    if (layers.length > MAX_ENTRIES.signatures)
      throw new RegistryError(
        `the signature image ${sig.digest} holds ${layers.length} signatures, more than the ${MAX_ENTRIES.signatures} verify reads`,
      );
    const reasons: string[] = [];
    let good = 0;
    for (const layer of layers) {
      const payload = await registry.blob(repo, layer.digest, layer.size);
      const signature = Buffer.from(layer.annotations?.[SIGNATURE_ANNOTATION] ?? '', 'base64');
      if (!cryptoVerify('sha256', payload, { key: publicKey, dsaEncoding: 'der' }, signature)) {
        reasons.push(
          'the signature does not verify with the given key over the payload (wrong key, or payload or signature altered)',
        );
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
      if (claims.critical?.type !== 'cosign container image signature') {
        reasons.push(`the payload type is ${JSON.stringify(claims.critical?.type)}`);
        continue;
      }
      if (signedDigest !== digest) {
        reasons.push(`the signature is for digest ${signedDigest}, not ${digest} (copied from another image)`);
        continue;
      }
      if (signedRef !== identity) {
        reasons.push(`the signature names ${signedRef}, not ${identity}`);
        continue;
      }
      good++;
    }
    if (good > 0)
      checked.push(
        `signature: ECDSA-P256/SHA-256 over the simple-signing payload verifies with the key; payload digest ${digest} and identity ${identity} match (${good} of ${layers.length} signature(s))`,
      );
    else failures.push(`signature refused: ${reasons.join('; ') || 'the signature image has no simple-signing layer'}`);
  }

  // 2. referrers (tag schema): every bundle must verify and be about this digest
  const index = await registry.manifest(repo, digestTag(digest));
  const referrers = index
    ? descriptorsOf(index, 'manifests', 'the referrers index').filter((d) => d.artifactType === MEDIA.bundle)
    : [];
  if (referrers.length > MAX_ENTRIES.referrers)
    throw new RegistryError(
      `the referrers index of ${digest} lists ${referrers.length} bundles, more than the ${MAX_ENTRIES.referrers} verify reads`,
    );
  const verifier = bundleVerifier(publicKey);
  const seen = new Set<string>();
  for (const d of referrers) {
    const label = d.annotations?.['dev.sigstore.bundle.predicateType'] ?? d.digest;
    try {
      const m = await registry.manifest(repo, d.digest, d.size);
      if (!m) throw new Error('the referrer manifest is missing');
      const subject = m.json.subject as Descriptor | undefined;
      if (subject?.digest !== digest) throw new Error(`the referrer's subject is ${subject?.digest}, not ${digest}`);
      const layer = descriptorsOf(m, 'layers', 'the referrer').find((l) => l.mediaType === MEDIA.bundle);
      if (!layer) throw new Error('the referrer holds no bundle');
      const stmt = verifyBundle(verifier, await registry.blob(repo, layer.digest, layer.size));
      const subjects = stmt.subject.map((s) => `sha256:${s.digest.sha256}`);
      if (!subjects.includes(digest))
        throw new Error(`the statement's subject is ${subjects.join(', ')}, not ${digest}`);
      if (stmt.predicateType !== label)
        throw new Error(
          `the statement's predicate type ${stmt.predicateType} differs from the referrer's annotation ${label}`,
        );
      statements.set(stmt.predicateType, stmt);
      seen.add(stmt.predicateType);
      checked.push(`attestation ${stmt.predicateType}: bundle signature verifies with the key; subject is ${digest}`);
    } catch (e) {
      // The deadline and the registry's own failures end the whole verification.
      if (e instanceof RegistryError) throw e;
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
  const top = await resolve(registry, ref);
  if (!isIndex(top)) return verifyImage(registry, ref, top, publicKey);
  descriptorsOf(top, 'manifests', 'the index'); // a list of valid descriptors, or refused here
  const platforms = indexPlatforms(top);
  if (platforms.some((p) => typeof p.platform !== 'object' || p.platform === null))
    throw new RegistryError(`the index ${top.digest} lists a platform that is not an object`);
  if (platforms.length > MAX_ENTRIES.platforms)
    throw new RegistryError(
      `the index ${top.digest} lists ${platforms.length} platforms, more than the ${MAX_ENTRIES.platforms} verify reads`,
    );
  const outcome = await verifyImage(registry, ref, top, publicKey, [PREDICATE.sign]);
  if (platforms.length === 0) outcome.failures.push(`the index ${outcome.digest} lists no platform image`);
  else
    outcome.checked.push(`index ${outcome.digest} lists ${platforms.map((p) => platformName(p.platform)).join(', ')}`);
  for (const p of platforms) {
    const label = `[${platformName(p.platform)}]`;
    const childRef = { host: ref.host, repository: ref.repository, digest: p.digest };
    const image = await registry.manifest(ref.repository, p.digest, p.size);
    if (!image) {
      outcome.failures.push(`${label} ${formatRef(childRef)} is not in the registry`);
      continue;
    }
    if (isIndex(image)) {
      outcome.failures.push(`${label} ${p.digest} is an index, not a platform image`);
      continue;
    }
    const child = await verifyImage(registry, childRef, image, publicKey);
    outcome.checked.push(...child.checked.map((c) => `${label} ${c}`));
    outcome.failures.push(...child.failures.map((f) => `${label} ${f}`));
  }
  return outcome;
}
