// Signatures over an image digest, in the two forms cosign users meet:
//  - the classic attachment: a simple-signing payload signed with ECDSA-P256/SHA-256,
//    stored as an OCI manifest under the tag `sha256-<hex>.sig`, the base64 signature
//    in the layer annotation `dev.cosignproject.cosign/signature` (cosign's signature spec);
//  - Sigstore bundles (v0.3) holding DSSE-wrapped in-toto statements, each attached as an
//    OCI 1.1 referrer (`subject` = the image). Registry 2.8 has no referrers API, so the
//    referrers tag schema of the distribution spec is kept: an index at `sha256-<hex>`.
// The bundles come from @sigstore/sign with this key as signer and no witnesses
// (no transparency log or timestamp authority: neither is reachable offline).
import { createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { DSSEBundleBuilder, type Signer } from '@sigstore/sign';
import { bundleToJSON } from '@sigstore/bundle';
import { keyHint } from './keys.ts';
import { digestTag, MEDIA, RegistryError, sha256, type Descriptor, type Manifest, type Registry } from './registry.ts';

export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const PREDICATE = {
  sign: 'https://sigstore.dev/cosign/sign/v1',
  sbom: 'https://cyclonedx.org/bom',
  provenance: 'https://slsa.dev/provenance/v1',
} as const;
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const EMPTY = Buffer.from('{}');

/** The simple-signing payload, byte for byte as cosign marshals it (Go struct order, `optional: null`). */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** The config cosign's signature images carry (go-containerregistry's empty image plus one layer). */
function signatureConfig(layerDigests: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: layerDigests.map(() => ({ created: '0001-01-01T00:00:00Z' })),
      os: '',
      rootfs: { type: 'layers', diff_ids: layerDigests },
      config: {},
    }),
  );
}

export interface Statement {
  _type: 'https://in-toto.io/Statement/v1';
  subject: { name: string; digest: Record<string, string> }[];
  predicateType: string;
  predicate: unknown;
}

export function statement(name: string, digest: string, predicateType: string, predicate: unknown): Statement {
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name, digest: { sha256: digest.replace(/^sha256:/, '') } }],
    predicateType,
    predicate,
  };
}

/** A Sigstore bundle (v0.3, DSSE envelope) over an in-toto statement, signed with `key`. */
export async function dsseBundle(key: KeyObject, stmt: Statement): Promise<Buffer> {
  const publicKey = createPublicKey(key);
  const signer: Signer = {
    sign: (data) =>
      Promise.resolve({
        signature: cryptoSign('sha256', data, { key, dsaEncoding: 'der' }),
        key: {
          $case: 'publicKey',
          publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
          hint: keyHint(publicKey),
        },
      }),
  };
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({
    data: Buffer.from(JSON.stringify(stmt)),
    type: IN_TOTO_PAYLOAD_TYPE,
  });
  return Buffer.from(JSON.stringify(bundleToJSON(bundle)));
}

const descriptorOf = (m: Manifest): Descriptor => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length });

export interface Attachment {
  predicateType: string;
  bundle: Buffer;
}

export interface SignResult {
  signatureTag: string;
  referrers: { digest: string; predicateType: string }[];
}

/**
 * Signs and attests `image` (a manifest fetched by digest). Order matters: every blob and
 * referrer manifest is uploaded first (untagged, so invisible), then the referrers index,
 * then the `.sig` tag last. If anything fails before the end, the index is put back as it
 * was, so the image is never left looking signed with only part of its evidence.
 */
export async function signAndAttach(
  registry: Registry,
  repository: string,
  image: Manifest,
  key: KeyObject,
  attachments: Attachment[],
  created: string,
): Promise<SignResult> {
  const reference = `${registry.host}/${repository}`;
  // 1. the classic signature image (blobs now, tag at the very end)
  const payload = simpleSigningPayload(reference, image.digest);
  const signature = cryptoSign('sha256', payload, { key, dsaEncoding: 'der' }).toString('base64');
  const sigTag = `${digestTag(image.digest)}.sig`;
  const existing = await registry.manifest(repository, sigTag);
  const layers: Descriptor[] = existing
    ? ((existing.json.layers as Descriptor[] | undefined) ?? []).filter(
        (l) => l.annotations?.[SIGNATURE_ANNOTATION] !== signature,
      )
    : [];
  const payloadDesc = await registry.pushBlob(repository, MEDIA.simpleSigning, payload);
  layers.push({ ...payloadDesc, annotations: { [SIGNATURE_ANNOTATION]: signature } });
  const configDesc = await registry.pushBlob(repository, MEDIA.ociConfig, signatureConfig(layers.map((l) => l.digest)));
  const sigManifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDesc, layers }),
  );

  // 2. one referrer manifest per bundle, pushed by digest
  const emptyDesc = await registry.pushBlob(repository, MEDIA.ociEmpty, EMPTY);
  const added: Descriptor[] = [];
  for (const a of attachments) {
    const layer = await registry.pushBlob(repository, MEDIA.bundle, a.bundle);
    const annotations = {
      'dev.sigstore.bundle.content': 'dsse-envelope',
      'dev.sigstore.bundle.predicateType': a.predicateType,
      'org.opencontainers.image.created': created,
    };
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        artifactType: MEDIA.bundle,
        config: emptyDesc,
        layers: [layer],
        subject: descriptorOf(image),
        annotations,
      }),
    );
    const digest = await registry.putManifest(repository, sha256(bytes), MEDIA.ociManifest, bytes);
    added.push({ mediaType: MEDIA.ociManifest, digest, size: bytes.length, artifactType: MEDIA.bundle, annotations });
  }

  // 3. the referrers index (tag schema), then 4. the signature tag
  const indexTag = digestTag(image.digest);
  const previous = await registry.manifest(repository, indexTag);
  const kept = previous
    ? ((previous.json.manifests as Descriptor[] | undefined) ?? []).filter(
        (d) => !added.some((n) => n.digest === d.digest),
      )
    : [];
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [...kept, ...added] }),
  );
  await registry.putManifest(repository, indexTag, MEDIA.ociIndex, index);
  try {
    await registry.putManifest(repository, sigTag, MEDIA.ociManifest, sigManifest);
  } catch (e) {
    await rollbackIndex(registry, repository, indexTag, previous).catch(() => undefined);
    throw e;
  }
  return {
    signatureTag: sigTag,
    referrers: added.map((d) => ({
      digest: d.digest,
      predicateType: d.annotations!['dev.sigstore.bundle.predicateType']!,
    })),
  };
}

async function rollbackIndex(
  registry: Registry,
  repository: string,
  tag: string,
  previous: Manifest | null,
): Promise<void> {
  if (previous) {
    await registry.putManifest(repository, tag, previous.mediaType, previous.bytes);
    return;
  }
  const now = await registry.manifest(repository, tag);
  if (!now) return;
  try {
    await registry.deleteManifest(repository, now.digest);
  } catch {
    // A registry with deletes disabled: an empty index lists no referrer either.
    await registry.putManifest(
      repository,
      tag,
      MEDIA.ociIndex,
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] })),
    );
  }
}

export { RegistryError };
