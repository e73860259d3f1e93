// `npm run verify` against a registry that lies: Debian's distribution registry holds the
// real, correctly signed images, and a small node:http front written here passes every
// request through to it, except the ones a test turns hostile (a tag answered differently
// on the next read, a blob declared or served far too large, endless referrers, a trickle,
// a redirect to another host, a manifest that is not JSON). Each is refused with a clear
// one-line message, without reading more than it must, within the time it was given.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { digestTag, MEDIA, Registry, sha256, type Manifest } from '../../scripts/supply-chain/registry.ts';
import { dsseBundle, PREDICATE, signAndAttach, statement } from '../../scripts/supply-chain/sign.ts';
import { publishIndex } from '../../scripts/supply-chain/image-index.ts';
import { startRegistry, type Service } from './services.ts';

const available = spawnSync('sh', ['-c', 'command -v docker-registry'], { stdio: 'ignore' }).status === 0;
const mustRun = process.env.CI === 'true';

/** Decides one request; returns true when it answered it (else the request goes to the real registry). */
type Hook = (req: IncomingMessage, res: ServerResponse) => boolean;

/** The hostile front: a pass-through proxy to the real registry with one replaceable hook. */
class Front {
  hook: Hook = () => false;
  readonly seen: string[] = [];
  server!: Server;
  host = '';

  private readonly upstream: string;

  constructor(upstream: string) {
    this.upstream = upstream;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.seen.push(`${req.method} ${req.url}`);
      if (this.hook(req, res)) return;
      const [hostname, port] = this.upstream.split(':');
      const up = httpRequest(
        { hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  requests(match: string): number {
    return this.seen.filter((s) => s.includes(match)).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/**
 * Streams `total` bytes of junk (chunked, no Content-Length unless asked), respecting back
 * pressure; `sent()` is what the socket accepted before the client hung up.
 */
function junk(res: ServerResponse, total: number, contentType = 'application/octet-stream'): { sent: () => number } {
  let sent = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  res.writeHead(200, { 'Content-Type': contentType });
  const pump = (): void => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (sent >= total) res.end();
  };
  pump();
  return { sent: () => sent };
}

const MAXRSS = 'process.on("exit",()=>process.stderr.write("\\nmaxrss-kib "+process.resourceUsage().maxRSS+"\\n"))';

interface Run {
  code: number | null;
  output: string;
  ms: number;
  rssMiB: number;
  lines: string[];
}

/** `npm run verify` as users run it, its peak resident memory read from inside at exit. */
function verify(ref: string, pub: string, extra: string[] = []): Promise<Run> {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        `data:text/javascript,${encodeURIComponent(MAXRSS)}`,
        'scripts/verify.ts',
        ref,
        '--key',
        pub,
        ...extra,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.on('close', (code) => {
      const rss = /maxrss-kib (\d+)/.exec(output);
      const text = output.replace(/\n?maxrss-kib \d+\n/, '').trim();
      resolve({
        code,
        output: text,
        ms: performance.now() - start,
        rssMiB: rss ? Number(rss[1]) / 1024 : NaN,
        lines: text.split('\n'),
      });
    });
  });
}

const REPO = 'hostile/echo';
let real: Service;
let front: Front;
let api: Registry;
let work: string;
let key: KeyObject;
let pub: string;
const report: string[] = [];

/** A small OCI image (config + one layer) pushed through the API; `arch` makes it distinct. */
async function pushImage(content: string, tag: string): Promise<Manifest> {
  const config = await api.pushBlob(
    REPO,
    MEDIA.ociConfig,
    Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }),
    ),
  );
  const layer = await api.pushBlob(REPO, 'application/vnd.oci.image.layer.v1.tar', Buffer.from(content));
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers: [layer] }),
  );
  const digest = await api.putManifest(REPO, tag, MEDIA.ociManifest, bytes);
  return (await api.manifest(REPO, digest))!;
}

/** Signs `image` as the release does, with the statements of `predicates` attached. */
async function sign(image: Manifest, predicates: string[]): Promise<void> {
  const name = `${front.host}/${REPO}`;
  const attachments = await Promise.all(
    predicates.map(async (p) => ({
      predicateType: p,
      bundle: await dsseBundle(key, statement(name, image.digest, p, { test: p })),
    })),
  );
  await signAndAttach(api, REPO, image, key, attachments, new Date().toISOString());
}

const ALL = [PREDICATE.sign, PREDICATE.sbom, PREDICATE.provenance];

function refusedCleanly(r: Run, message: RegExp, what: string): void {
  assert.equal(r.code, 1, r.output);
  const last = r.lines[r.lines.length - 1]!;
  assert.match(last, message, r.output);
  assert.ok(r.output.length < 2000, `a short answer, not a dump (${r.output.length} chars)`);
  assert.doesNotMatch(r.output, /^\s+at /m, 'no stack trace');
  assert.ok(r.rssMiB < 250, `peak memory ${r.rssMiB.toFixed(0)} MiB`);
  report.push(`${what}: ${last} (${(r.ms / 1000).toFixed(1)} s, peak RSS ${r.rssMiB.toFixed(0)} MiB)`);
}

describe(
  'verify against a hostile registry',
  { skip: !available && !mustRun ? 'docker-registry is not installed' : false, timeout: 5 * 60_000 },
  () => {
    let signed: Manifest;
    let sigManifest: Manifest;

    before(async () => {
      assert.ok(available, 'CI needs docker-registry (apt-get install docker-registry)');
      work = await mkdtemp(join(tmpdir(), 'verify-hostile-'));
      real = await startRegistry();
      front = new Front(real.host);
      await front.start();
      // Everything is pushed and signed through the front, so the identity signed is its host.
      api = new Registry(front.host);
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      key = pair.privateKey;
      pub = join(work, 'cosign.pub');
      await writeFile(pub, pair.publicKey.export({ format: 'pem', type: 'spki' }).toString());
      signed = await pushImage(`signed ${process.pid}`, 'signed');
      await sign(signed, ALL);
      sigManifest = (await api.manifest(REPO, `${digestTag(signed.digest)}.sig`))!;
    });

    beforeEach(() => {
      front.hook = () => false;
      front.seen.length = 0;
    });

    after(async () => {
      await front?.stop();
      await real?.stop();
      if (work) await rm(work, { recursive: true, force: true });
      if (report.length > 0) process.stdout.write(`${report.map((l) => `# ${l}`).join('\n')}\n`);
    });

    it('the honest pass-through verifies (the baseline every hostile case departs from)', async () => {
      const r = await verify(`${front.host}/${REPO}:signed`, pub);
      assert.equal(r.code, 0, r.output);
      assert.equal(r.lines[r.lines.length - 1], `verify: VERIFIED ${front.host}/${REPO}@${signed.digest}`);
      report.push(`honest registry: verified in ${(r.ms / 1000).toFixed(1)} s, peak RSS ${r.rssMiB.toFixed(0)} MiB`);
    });

    it('a tag answered with a signed index first and another signed image next: the tag is read once, the index is what gets verified', async () => {
      // The index and its platform image carry everything; `other` is signed but has no SBOM or provenance.
      const platform = await pushImage(`platform ${process.pid}`, 'platform');
      await sign(platform, ALL);
      const index = await publishIndex(api, REPO, 'multi', [platform]);
      await sign(index, [PREDICATE.sign]);
      const other = await pushImage(`other ${process.pid}`, 'other');
      await sign(other, [PREDICATE.sign]);
      let reads = 0;
      front.hook = (req, res) => {
        if (req.method !== 'GET' || req.url !== `/v2/${REPO}/manifests/multi`) return false;
        if (++reads === 1) return false;
        res.writeHead(200, { 'Content-Type': other.mediaType, 'Docker-Content-Digest': other.digest }).end(other.bytes);
        return true;
      };
      const r = await verify(`${front.host}/${REPO}:multi`, pub);
      assert.equal(reads, 1, 'the tag was read once');
      assert.equal(r.code, 0, r.output);
      assert.equal(r.lines[r.lines.length - 1], `verify: VERIFIED ${front.host}/${REPO}@${index.digest}`);
      assert.doesNotMatch(r.output, new RegExp(other.digest));

      // The other image on its own, by digest, is refused for what it lacks.
      const alone = await verify(`${front.host}/${REPO}@${other.digest}`, pub);
      assert.equal(alone.code, 1, alone.output);
      assert.match(alone.output, /FAIL +missing: no verified https:\/\/cyclonedx\.org\/bom bundle/);
      report.push(
        `tag flip index -> image: read once, verified ${index.digest.slice(0, 19)}…; the other image alone: ${alone.lines[alone.lines.length - 1]}`,
      );
    });

    it('a signature layer declaring 1 GiB is refused without being fetched', async () => {
      const layers = (sigManifest.json.layers as { size: number }[]).map((l) => ({ ...l, size: 1024 ** 3 }));
      const forged = Buffer.from(JSON.stringify({ ...sigManifest.json, layers }));
      const blob = (sigManifest.json.layers as { digest: string }[])[0]!.digest;
      front.hook = (req, res) => {
        if (req.url === `/v2/${REPO}/manifests/${digestTag(signed.digest)}.sig`) {
          res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(forged);
          return true;
        }
        if (req.url === `/v2/${REPO}/blobs/${blob}`) {
          junk(res, 96 * 1024 * 1024);
          return true;
        }
        return false;
      };
      const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub);
      refusedCleanly(
        r,
        new RegExp(
          `^verify: blob ${blob} of ${REPO} declares 1073741824 bytes, more than the 67108864 this client reads; not fetched$`,
        ),
        'signature layer declaring 1 GiB',
      );
      assert.equal(front.requests(`/blobs/${blob}`), 0, 'the blob was never requested');
    });

    it('a blob larger than its descriptor declares: the read stops at the declared size', async () => {
      const layer = (sigManifest.json.layers as { digest: string; size: number }[])[0]!;
      let stream: { sent: () => number } | undefined;
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/blobs/${layer.digest}`) return false;
        stream = junk(res, 96 * 1024 * 1024);
        return true;
      };
      const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub);
      refusedCleanly(
        r,
        new RegExp(
          `^verify: registry ${front.host} returned over ${layer.size} bytes for blob ${layer.digest} of ${REPO}, more than the ${layer.size} its descriptor declares$`,
        ),
        'blob larger than declared',
      );
      assert.ok(stream, 'the blob was requested');
      // What the server could push before the client hung up: socket buffers, not the 96 MiB.
      assert.ok(stream.sent() < 16 * 1024 * 1024, `the server got ${stream.sent()} bytes out`);
    });

    it('endless referrers: an index listing 10000 bundles is refused without reading them', async () => {
      const bundles = Array.from({ length: 10_000 }, () => ({
        mediaType: MEDIA.ociManifest,
        digest: sha256(randomBytes(16)),
        size: 600,
        artifactType: MEDIA.bundle,
        annotations: { 'dev.sigstore.bundle.predicateType': PREDICATE.sbom },
      }));
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: bundles }));
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/${digestTag(signed.digest)}`) return false;
        res.writeHead(200, { 'Content-Type': MEDIA.ociIndex }).end(index);
        return true;
      };
      const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub);
      refusedCleanly(
        r,
        new RegExp(
          `^verify: the referrers index of ${signed.digest} lists 10000 bundles, more than the 32 verify reads$`,
        ),
        'endless referrers',
      );
      assert.ok(front.seen.length < 10, `${front.seen.length} requests: ${front.seen.join(', ')}`);
    });

    it('a registry that trickles its answer is given up on at the overall deadline', async () => {
      const layer = (sigManifest.json.layers as { digest: string }[])[0]!;
      const timers: NodeJS.Timeout[] = [];
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/blobs/${layer.digest}`) return false;
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        // One byte every 200 ms: never idle long enough for a per-read timeout, never done.
        const t = setInterval(() => {
          if (!res.destroyed) res.write('{');
        }, 200);
        timers.push(t);
        res.on('close', () => clearInterval(t));
        return true;
      };
      try {
        const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub, ['--timeout', '3']);
        refusedCleanly(
          r,
          new RegExp(
            `^verify: registry ${front.host}: reading blob ${layer.digest} of ${REPO} did not complete within the overall deadline of 3 s$`,
          ),
          'trickling registry, --timeout 3',
        );
        assert.ok(r.ms < 20_000, `ended after ${r.ms.toFixed(0)} ms`);
      } finally {
        for (const t of timers) clearInterval(t);
      }
    });

    it('a registry that never answers is given up on at the overall deadline', async () => {
      const held: ServerResponse[] = [];
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/${digestTag(signed.digest)}`) return false;
        held.push(res); // no status line, ever
        return true;
      };
      try {
        const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub, ['--timeout', '2']);
        refusedCleanly(
          r,
          new RegExp(
            `^verify: registry ${front.host}: GET /v2/${REPO}/manifests/${digestTag(signed.digest)} did not complete within the overall deadline of 2 s$`,
          ),
          'registry that never answers, --timeout 2',
        );
        assert.ok(r.ms < 20_000, `ended after ${r.ms.toFixed(0)} ms`);
      } finally {
        for (const res of held) res.destroy();
      }
    });

    it('--timeout is bounded and checked', async () => {
      for (const bad of ['0', '3601', 'soon']) {
        const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub, ['--timeout', bad]);
        assert.equal(r.code, 2, r.output);
        assert.equal(r.output, `verify: --timeout ${bad}: a whole number of seconds from 1 to 3600`);
      }
    });

    it('a redirect to another host is not followed', async () => {
      const elsewhere: string[] = [];
      const other = createServer((req, res) => {
        elsewhere.push(`${req.method} ${req.url}`);
        res.writeHead(200, { 'Content-Type': signed.mediaType }).end(signed.bytes);
      });
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      const otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/signed`) return false;
        res.writeHead(307, { Location: `${otherOrigin}${req.url}` }).end();
        return true;
      };
      try {
        const r = await verify(`${front.host}/${REPO}:signed`, pub);
        refusedCleanly(
          r,
          new RegExp(
            `^verify: registry ${front.host} redirected GET /v2/${REPO}/manifests/signed to another host \\(${otherOrigin}\\); not followed$`,
          ),
          'redirect to another host',
        );
        assert.deepEqual(elsewhere, [], 'nothing was asked of the other host');
      } finally {
        other.closeAllConnections();
        await new Promise((r) => other.close(r));
      }
    });

    it('a redirect within the registry is followed (a registry may move its own paths)', async () => {
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/moved`) return false;
        res.writeHead(307, { Location: `/v2/${REPO}/manifests/signed` }).end();
        return true;
      };
      const r = await verify(`${front.host}/${REPO}:moved`, pub);
      assert.equal(r.code, 0, r.output);
      assert.equal(r.lines[r.lines.length - 1], `verify: VERIFIED ${front.host}/${REPO}@${signed.digest}`);
    });

    for (const [what, size] of [
      ['a 3 MB manifest that is not JSON', 3_000_000],
      ['a 5 MB manifest that is not JSON', 5_000_000],
    ] as const) {
      it(`${what}: one clear line`, async () => {
        front.hook = (req, res) => {
          if (req.url !== `/v2/${REPO}/manifests/signed`) return false;
          res
            .writeHead(200, { 'Content-Type': MEDIA.ociManifest, 'Content-Length': size })
            .end(Buffer.alloc(size, 0x78));
          return true;
        };
        const r = await verify(`${front.host}/${REPO}:signed`, pub);
        const message =
          size > 4 * 1024 * 1024
            ? new RegExp(
                `^verify: registry ${front.host} returned ${size} bytes for manifest ${REPO}:signed, more than the 4194304 allowed$`,
              )
            : new RegExp(
                `^verify: registry ${front.host}: manifest ${REPO}:signed is not JSON \\(${size} bytes, ${MEDIA.ociManifest.replace(/[.+]/g, '\\$&')}\\)$`,
              );
        refusedCleanly(r, message, what);
      });
    }

    it('an index whose "manifests" is not a list: one clear line', async () => {
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/odd`) return false;
        res
          .writeHead(200, { 'Content-Type': MEDIA.ociIndex })
          .end(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: 'everything' }));
        return true;
      };
      const r = await verify(`${front.host}/${REPO}:odd`, pub);
      refusedCleanly(
        r,
        /^verify: the index sha256:[a-f0-9]{64}: "manifests" is not a list$/,
        'index with a string for its list',
      );
    });

    it('a descriptor whose digest is not a sha256 digest never reaches a URL', async () => {
      const layers = (sigManifest.json.layers as { digest: string }[]).map((l) => ({
        ...l,
        digest: '../../../../etc/passwd',
      }));
      const forged = Buffer.from(JSON.stringify({ ...sigManifest.json, layers }));
      front.hook = (req, res) => {
        if (req.url !== `/v2/${REPO}/manifests/${digestTag(signed.digest)}.sig`) return false;
        res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(forged);
        return true;
      };
      const r = await verify(`${front.host}/${REPO}@${signed.digest}`, pub);
      refusedCleanly(
        r,
        /^verify: the signature image sha256:[a-f0-9]{64}: entry 0 of "layers" is not a valid descriptor \(sha256 digest, size, media type\)$/,
        'descriptor with a path for a digest',
      );
      assert.equal(front.seen.filter((s) => s.includes('passwd') || s.includes('..')).length, 0, front.seen.join(', '));
    });
  },
);
