// A small client for the OCI distribution API (what the release and verify commands
// need, nothing more): manifests by tag or digest, blob upload and download. Every
// manifest and blob read is checked against the digest it was asked for, so a
// registry cannot hand back different bytes than the ones that were signed.
import { createHash } from 'node:crypto';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
  bundle: 'application/vnd.dev.sigstore.bundle.v0.3+json',
} as const;
const ACCEPT_ALL = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

export class RegistryError extends Error {}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface Manifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  json: Record<string, unknown>;
}

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX] */
export interface ImageRef {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseRef(text: string): ImageRef {
  const m = /^([a-z0-9.-]+(?::\d+)?)\/([a-z0-9._/-]+?)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$/.exec(text);
  if (!m) throw new RegistryError(`"${text}" is not an image reference of the form HOST:PORT/REPOSITORY[:TAG][@sha256:DIGEST]`);
  const ref: ImageRef = { host: m[1]!, repository: m[2]! };
  if (m[3] !== undefined) ref.tag = m[3];
  if (m[4] !== undefined) ref.digest = m[4];
  return ref;
}

export const formatRef = (r: ImageRef): string => `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;

/** The tag that the cosign spec and the OCI referrers tag schema derive from a digest. */
export const digestTag = (digest: string): string => digest.replace(':', '-');

export class Registry {
  readonly base: string;
  readonly host: string;

  constructor(host: string) {
    this.host = host;
    // Loopback registries speak plain HTTP, as the Docker daemon allows for 127.0.0.0/8.
    const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(host);
    this.base = `${loopback ? 'http' : 'https'}://${host}/v2`;
  }

  private async request(method: string, path: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    try {
      return await fetch(`${this.base}${path}`, { method, headers: init.headers, body: init.body, signal: AbortSignal.timeout(60_000) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new RegistryError(`registry ${this.host} is not reachable (${cause})`);
    }
  }

  /** Checks that the registry answers the distribution API. */
  async ping(): Promise<void> {
    const res = await this.request('GET', '/');
    await res.arrayBuffer();
    if (res.status !== 200 && res.status !== 401) throw new RegistryError(`registry ${this.host} answered ${res.status} to /v2/, not a distribution registry`);
  }

  /** The manifest at a tag or digest, or null when there is none. */
  async manifest(repository: string, reference: string): Promise<Manifest | null> {
    const res = await this.request('GET', `/${repository}/manifests/${reference}`, { headers: { Accept: ACCEPT_ALL } });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status === 404) return null;
    if (!res.ok) throw new RegistryError(`registry ${this.host}: GET manifest ${repository}:${reference} answered ${res.status}`);
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(`registry ${this.host} returned a manifest whose digest is ${digest}, not ${reference}`);
    const json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const mediaType = (json.mediaType as string | undefined) ?? res.headers.get('content-type') ?? '';
    return { bytes, digest, mediaType, json };
  }

  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request('PUT', `/${repository}/manifests/${reference}`, { headers: { 'Content-Type': mediaType }, body: bytes });
    const text = await res.text();
    if (res.status !== 201) throw new RegistryError(`registry ${this.host} refused manifest ${repository}:${reference} (${res.status} ${text.slice(0, 300)})`);
    return sha256(bytes);
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    const res = await this.request('DELETE', `/${repository}/manifests/${digest}`);
    await res.arrayBuffer();
    if (res.status !== 202 && res.status !== 404) throw new RegistryError(`registry ${this.host}: DELETE ${digest} answered ${res.status}`);
  }

  async blob(repository: string, digest: string): Promise<Buffer> {
    const res = await this.request('GET', `/${repository}/blobs/${digest}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (!res.ok) throw new RegistryError(`registry ${this.host}: blob ${digest} of ${repository} answered ${res.status}`);
    if (sha256(bytes) !== digest) throw new RegistryError(`registry ${this.host} returned blob bytes that do not hash to ${digest}`);
    return bytes;
  }

  /** Uploads a blob (monolithic POST then PUT) unless it is already there; returns its descriptor. */
  async pushBlob(repository: string, mediaType: string, bytes: Buffer): Promise<Descriptor> {
    const digest = sha256(bytes);
    const head = await this.request('HEAD', `/${repository}/blobs/${digest}`);
    if (head.status !== 200) {
      const start = await this.request('POST', `/${repository}/blobs/uploads/`);
      await start.arrayBuffer();
      const location = start.headers.get('location');
      if (start.status !== 202 || !location) throw new RegistryError(`registry ${this.host} refused a blob upload to ${repository} (${start.status})`);
      const url = new URL(location, `${this.base}/`);
      url.searchParams.set('digest', digest);
      let put: Response;
      try {
        put = await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: bytes, signal: AbortSignal.timeout(60_000) });
      } catch (e) {
        throw new RegistryError(`registry ${this.host} is not reachable (${(e as Error).message})`);
      }
      await put.arrayBuffer();
      if (put.status !== 201) throw new RegistryError(`registry ${this.host} refused blob ${digest} (${put.status})`);
    }
    return { mediaType, digest, size: bytes.length };
  }
}
