// One reference for several platforms: an OCI image index listing the per-platform
// manifests already in the registry, each with the platform its own config declares
// (never the one that was asked for, so the index cannot claim what the image is not).
import { MEDIA, RegistryError, type Descriptor, type Manifest, type Registry } from './registry.ts';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export const platformName = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** The platform an image manifest's config blob declares. */
export async function platformOf(registry: Registry, repository: string, image: Manifest): Promise<Platform> {
  const config = image.json.config as Descriptor | undefined;
  if (!config) throw new RegistryError(`${repository}@${image.digest} is not an image manifest (no config)`);
  const json = JSON.parse((await registry.blob(repository, config.digest, config.size)).toString('utf8')) as {
    architecture?: string;
    os?: string;
    variant?: string;
  };
  if (!json.architecture || !json.os)
    throw new RegistryError(`${repository}@${image.digest}: its config names no os/architecture`);
  return { architecture: json.architecture, os: json.os, ...(json.variant ? { variant: json.variant } : {}) };
}

/**
 * Writes the index for `images` at `tag` and returns it as stored. Two images of the same
 * platform are refused: a client would pick one of them arbitrarily.
 */
export async function publishIndex(
  registry: Registry,
  repository: string,
  tag: string,
  images: Manifest[],
  annotations: Record<string, string> = {},
): Promise<Manifest> {
  const manifests: (Descriptor & { platform: Platform })[] = [];
  for (const image of images) {
    const platform = await platformOf(registry, repository, image);
    if (manifests.some((m) => platformName(m.platform) === platformName(platform)))
      throw new RegistryError(`two images for ${platformName(platform)}`);
    manifests.push({ mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, platform });
  }
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests,
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    }),
  );
  const digest = await registry.putManifest(repository, tag, MEDIA.ociIndex, bytes);
  const stored = await registry.manifest(repository, digest);
  if (!stored) throw new RegistryError(`the index ${digest} is not in the registry after the push`);
  return stored;
}

export const isIndex = (m: Manifest): boolean => m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList;

/** The platform entries of an index (signature and attestation entries have no platform). */
export const indexPlatforms = (m: Manifest): (Descriptor & { platform: Platform })[] =>
  ((m.json.manifests as (Descriptor & { platform?: Platform })[] | undefined) ?? []).filter(
    (d): d is Descriptor & { platform: Platform } => d.platform !== undefined,
  );
