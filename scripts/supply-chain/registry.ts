// A small client for the OCI distribution API (what the release and verify commands
// need, nothing more): manifests by tag or digest, blob upload and download. Every
// manifest and blob read is checked against the digest it was asked for, so a
// registry cannot hand back different bytes than the ones that were signed.
// The registry is not trusted with resources either: every read stops at the size its
// descriptor declares and at a hard maximum, every request at a timeout and at the
// client's overall deadline, and a redirect is followed only on the same origin.
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

/**
 * What one read may hold. Registries themselves refuse manifests above 4 MiB (the
 * distribution spec's suggested limit); the blobs read here are small JSON documents
 * (signature payloads, bundles with an SBOM, image configs), far below 64 MiB.
 */
export const LIMITS = {
  manifestBytes: 4 * 1024 * 1024,
  blobBytes: 64 * 1024 * 1024,
  redirects: 3,
  requestMs: 60_000,
} as const;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface RegistryOptions {
  /** Every request made through this client ends by then (an overall deadline), in ms from now. */
  deadlineMs?: number;
}

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
  if (!m)
    throw new RegistryError(
      `"${text}" is not an image reference of the form HOST:PORT/REPOSITORY[:TAG][@sha256:DIGEST]`,
    );
  const ref: ImageRef = { host: m[1]!, repository: m[2]! };
  if (m[3] !== undefined) ref.tag = m[3];
  if (m[4] !== undefined) ref.digest = m[4];
  return ref;
}

export const formatRef = (r: ImageRef): string =>
  `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;

/** The tag that the cosign spec and the OCI referrers tag schema derive from a digest. */
export const digestTag = (digest: string): string => digest.replace(':', '-');

export class Registry {
  readonly base: string;
  readonly host: string;
  private readonly deadline: AbortSignal | undefined;
  private readonly deadlineMs: number | undefined;

  constructor(host: string, options: RegistryOptions = {}) {
    this.host = host;
    // Loopback registries speak plain HTTP, as the Docker daemon allows for 127.0.0.0/8.
    const loopback = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(host);
    this.base = `${loopback ? 'http' : 'https'}://${host}/v2`;
    this.deadlineMs = options.deadlineMs;
    this.deadline = options.deadlineMs === undefined ? undefined : AbortSignal.timeout(options.deadlineMs);
  }

  /** One request's signal: its own timeout and the client's overall deadline, whichever comes first. */
  private signal(): AbortSignal {
    const own = AbortSignal.timeout(LIMITS.requestMs);
    return this.deadline ? AbortSignal.any([own, this.deadline]) : own;
  }

  /** The error for a request or a body read that did not complete. */
  private failure(e: unknown, what: string): RegistryError {
    if (e instanceof RegistryError) return e;
    if (this.deadline?.aborted)
      return new RegistryError(
        `registry ${this.host}: ${what} did not complete within the overall deadline of ${this.deadlineMs! / 1000} s`,
      );
    const err = e as { name?: string; cause?: { code?: string; name?: string }; message?: string };
    if (err.name === 'TimeoutError' || err.cause?.name === 'TimeoutError')
      return new RegistryError(`registry ${this.host}: ${what} did not complete within ${LIMITS.requestMs / 1000} s`);
    const cause = err.cause?.code ?? err.message ?? String(e);
    return new RegistryError(`registry ${this.host} is not reachable (${cause})`);
  }

  private async request(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: Buffer } = {},
  ): Promise<Response> {
    let url = new URL(`${this.base}${path}`);
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: init.headers,
          body: init.body,
          redirect: 'manual',
          signal: this.signal(),
        });
      } catch (e) {
        throw this.failure(e, `${method} ${url.pathname}`);
      }
      // Uploads are never redirected (their body is gone); downloads only within the
      // registry's own origin: a registry must not send this client to another host.
      if (!REDIRECTS.has(res.status) || (method !== 'GET' && method !== 'HEAD')) return res;
      await res.body?.cancel().catch(() => undefined);
      const location = res.headers.get('location');
      let next: URL;
      try {
        next = new URL(location ?? '', url);
      } catch {
        throw new RegistryError(
          `registry ${this.host} answered ${method} ${url.pathname} with a ${res.status} redirect to an invalid location`,
        );
      }
      if (location === null)
        throw new RegistryError(
          `registry ${this.host} answered ${method} ${url.pathname} with a ${res.status} redirect and no location`,
        );
      if (next.origin !== url.origin)
        throw new RegistryError(
          `registry ${this.host} redirected ${method} ${url.pathname} to another host (${next.origin}); not followed`,
        );
      if (hop >= LIMITS.redirects)
        throw new RegistryError(
          `registry ${this.host} redirected ${method} ${url.pathname} more than ${LIMITS.redirects} times`,
        );
      url = next;
    }
  }

  /**
   * The body, read to at most `limit` bytes: a larger Content-Length is refused before
   * reading, and the read stops as soon as more arrives than allowed.
   */
  private async read(res: Response, limit: number, what: string, declared?: number): Promise<Buffer> {
    const tooBig = (n: string) =>
      new RegistryError(
        declared !== undefined && declared <= limit
          ? `registry ${this.host} returned ${n} bytes for ${what}, more than the ${declared} its descriptor declares`
          : `registry ${this.host} returned ${n} bytes for ${what}, more than the ${limit} allowed`,
      );
    const length = res.headers.get('content-length');
    if (length !== null && Number(length) > limit) {
      await res.body?.cancel().catch(() => undefined);
      throw tooBig(length);
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        total += chunk.length;
        if (total > limit) throw tooBig(`over ${limit}`);
        chunks.push(chunk);
      }
    } catch (e) {
      throw this.failure(e, `reading ${what}`);
    }
    return Buffer.concat(chunks, total);
  }

  /** The bound of one read: the declared size when there is one, never above `max`; a declared size above it is refused unread. */
  private limit(what: string, max: number, declared?: number): number {
    if (declared === undefined) return max;
    if (!Number.isSafeInteger(declared) || declared < 0)
      throw new RegistryError(`${what} declares an invalid size ${JSON.stringify(declared)}`);
    if (declared > max)
      throw new RegistryError(
        `${what} declares ${declared} bytes, more than the ${max} this client reads; not fetched`,
      );
    return declared;
  }

  /** Checks that the registry answers the distribution API. */
  async ping(): Promise<void> {
    const res = await this.request('GET', '/');
    await this.read(res, LIMITS.manifestBytes, '/v2/');
    if (res.status !== 200 && res.status !== 401)
      throw new RegistryError(`registry ${this.host} answered ${res.status} to /v2/, not a distribution registry`);
  }

  /**
   * The manifest at a tag or digest, or null when there is none. `size`, from the
   * descriptor that named it, bounds the read; a manifest that is not a JSON object is refused.
   */
  async manifest(repository: string, reference: string, size?: number): Promise<Manifest | null> {
    const what = `manifest ${repository}:${reference}`;
    const limit = this.limit(what, LIMITS.manifestBytes, size);
    const res = await this.request('GET', `/${repository}/manifests/${reference}`, { headers: { Accept: ACCEPT_ALL } });
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return null;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new RegistryError(`registry ${this.host}: GET manifest ${repository}:${reference} answered ${res.status}`);
    }
    const bytes = await this.read(res, limit, what, size);
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference)
      throw new RegistryError(`registry ${this.host} returned a manifest whose digest is ${digest}, not ${reference}`);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new RegistryError(
        `registry ${this.host}: ${what} is not JSON (${bytes.length} bytes, ${res.headers.get('content-type') ?? 'no content type'})`,
      );
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      throw new RegistryError(`registry ${this.host}: ${what} is not a JSON object`);
    const doc = json as Record<string, unknown>;
    const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : (res.headers.get('content-type') ?? '');
    return { bytes, digest, mediaType, json: doc };
  }

  async putManifest(repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request('PUT', `/${repository}/manifests/${reference}`, {
      headers: { 'Content-Type': mediaType },
      body: bytes,
    });
    const text = (await this.read(res, LIMITS.manifestBytes, `the answer to PUT ${reference}`)).toString('utf8');
    if (res.status !== 201)
      throw new RegistryError(
        `registry ${this.host} refused manifest ${repository}:${reference} (${res.status} ${text.slice(0, 300)})`,
      );
    return sha256(bytes);
  }

  async deleteManifest(repository: string, digest: string): Promise<void> {
    const res = await this.request('DELETE', `/${repository}/manifests/${digest}`);
    await this.read(res, LIMITS.manifestBytes, `the answer to DELETE ${digest}`);
    if (res.status !== 202 && res.status !== 404)
      throw new RegistryError(`registry ${this.host}: DELETE ${digest} answered ${res.status}`);
  }

  /** A blob by digest; `size`, from its descriptor, bounds the read (never above LIMITS.blobBytes). */
  async blob(repository: string, digest: string, size?: number): Promise<Buffer> {
    const what = `blob ${digest} of ${repository}`;
    if (!DIGEST.test(digest)) throw new RegistryError(`${what}: not a sha256 digest`);
    const limit = this.limit(what, LIMITS.blobBytes, size);
    const res = await this.request('GET', `/${repository}/blobs/${digest}`);
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new RegistryError(`registry ${this.host}: blob ${digest} of ${repository} answered ${res.status}`);
    }
    const bytes = await this.read(res, limit, what, size);
    if (sha256(bytes) !== digest)
      throw new RegistryError(`registry ${this.host} returned blob bytes that do not hash to ${digest}`);
    return bytes;
  }

  /** Uploads a blob (monolithic POST then PUT) unless it is already there; returns its descriptor. */
  async pushBlob(repository: string, mediaType: string, bytes: Buffer): Promise<Descriptor> {
    const digest = sha256(bytes);
    const head = await this.request('HEAD', `/${repository}/blobs/${digest}`);
    if (head.status !== 200) {
      const start = await this.request('POST', `/${repository}/blobs/uploads/`);
      await this.read(start, LIMITS.manifestBytes, 'the answer to an upload start');
      const location = start.headers.get('location');
      if (start.status !== 202 || !location)
        throw new RegistryError(`registry ${this.host} refused a blob upload to ${repository} (${start.status})`);
      const url = new URL(location, `${this.base}/`);
      url.searchParams.set('digest', digest);
      let put: Response;
      try {
        put = await fetch(url, {
          method: 'PUT',
          headers: { 'Content-Type': 'application/octet-stream' },
          body: bytes,
          redirect: 'manual',
          signal: this.signal(),
        });
      } catch (e) {
        throw this.failure(e, `PUT blob ${digest}`);
      }
      await this.read(put, LIMITS.manifestBytes, `the answer to PUT blob ${digest}`);
      if (put.status !== 201) throw new RegistryError(`registry ${this.host} refused blob ${digest} (${put.status})`);
    }
    return { mediaType, digest, size: bytes.length };
  }
}
