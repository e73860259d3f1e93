// The release against real services: Debian's distribution registry and notary-server
// started here, the production image built once, pushed with the Docker client, signed
// and attested by digest, read back over the registry HTTP API, verified by the
// project's command, by openssl and by @sigstore/verify, and refused when tampered with.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { DOCKER, docker, engineAvailable, pipeDocker, runCommand } from '../image/docker.ts';
import { loadPrivateKey, loadPublicKey } from '../../scripts/supply-chain/keys.ts';
import { digestTag, MEDIA, Registry, type Descriptor, type Manifest } from '../../scripts/supply-chain/registry.ts';
import {
  dsseBundle,
  PREDICATE,
  SIGNATURE_ANNOTATION,
  signAndAttach,
  statement,
  type Statement,
} from '../../scripts/supply-chain/sign.ts';
import { bundleVerifier, verifyBundle } from '../../scripts/supply-chain/verify.ts';
import { startNotary, startRegistry, type NotaryService, type Service } from './services.ts';

const exec = promisify(execFile);
const tools = ['docker-registry', 'notary-server', 'openssl'].filter(
  (t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0,
);
const available = engineAvailable() && tools.length === 0;
const mustRun = process.env.CI === 'true';
if (!available) {
  process.stderr.write(
    `\n*** SUPPLY-CHAIN TESTS: need a Docker engine through ${DOCKER} and ${tools.join(', ') || 'the tools'} ` +
      `(apt-get install docker-registry notary openssl)${mustRun ? ' (CI: failure)' : ', skipped'} ***\n`,
  );
}

const PASSWORD = 'es11 test passphrase';
const IMAGE = `es11/echo-server:test-${process.pid}`;
const REPO = 'es11/echo-server';
const localTags: string[] = [IMAGE];
let work: string;
let registry: Service;
let api: Registry;
let recordFile: string;
let keyFile: string;
let pubFile: string;
let otherPub: string;

async function node(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; output: string; last: string }> {
  const r = await runCommand(process.execPath, [script, ...args], {
    ...process.env,
    DOCKER,
    COSIGN_PASSWORD: PASSWORD,
    ...env,
  });
  const lines = r.output.trim().split('\n');
  return { ...r, last: lines[lines.length - 1] ?? '' };
}

const release = (args: string[], env: NodeJS.ProcessEnv = {}) => node('scripts/release.ts', args, env);
const verify = (ref: string, key = pubFile) => node('scripts/verify.ts', [ref, '--key', key]);

/** A tiny local image (one file), made without any registry: `docker import`. */
async function tinyImage(name: string, content: string): Promise<void> {
  const dir = await mkdtemp(join(work, 'tiny-'));
  await writeFile(join(dir, 'content.txt'), content);
  execFileSync('sh', ['-c', `tar -C "${dir}" -c content.txt | "${DOCKER}" import - "${name}"`], { stdio: 'ignore' });
  // By ID: a trusted pull can take its tag away and leave it under a registry name only.
  localTags.push(await docker('image', 'inspect', '--format', '{{.Id}}', name));
}

async function pushPlain(local: string, target: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  await docker('tag', local, target);
  localTags.push(target);
  const r = await runCommand(DOCKER, ['push', target], { ...process.env, DOCKER_CONTENT_TRUST: '0', ...env });
  assert.equal(r.code, 0, r.output);
  return /digest: (sha256:[a-f0-9]{64})/.exec(r.output)![1]!;
}

const descriptors = (m: Manifest, field: 'layers' | 'manifests'): Descriptor[] =>
  (m.json[field] as Descriptor[] | undefined) ?? [];

describe(
  'release: signed by digest, with SBOM and provenance, against a real registry',
  { skip: !available && !mustRun ? 'no Docker engine' : false, timeout: 25 * 60_000 },
  () => {
    let ref = '';
    let digest = '';
    let tagRef = '';

    before(async () => {
      assert.ok(available, `CI needs a Docker engine (client ${DOCKER}) and ${tools.join(', ')}`);
      work = await mkdtemp(join(tmpdir(), 'es11-release-'));
      recordFile = join(work, 'record.json');
      registry = await startRegistry();
      api = new Registry(registry.host);
      const build = await runCommand(
        process.execPath,
        ['scripts/image.ts', '--airgap', '--tag', IMAGE, '--record', recordFile],
        { ...process.env, DOCKER },
      );
      assert.equal(build.code, 0, build.output);
      for (const [prefix, pw] of [
        ['cosign', PASSWORD],
        ['other', 'another one'],
      ] as const) {
        const k = await runCommand(process.execPath, ['scripts/keygen.ts', '--prefix', join(work, prefix)], {
          ...process.env,
          COSIGN_PASSWORD: pw,
        });
        assert.equal(k.code, 0, k.output);
      }
      keyFile = join(work, 'cosign.key');
      pubFile = join(work, 'cosign.pub');
      otherPub = join(work, 'other.pub');
      await tinyImage(`es11/tiny:${process.pid}-a`, `unsigned image A ${process.pid}`);
      await tinyImage(`es11/tiny:${process.pid}-b`, `unsigned image B ${process.pid}`);
    });

    after(async () => {
      for (const t of localTags) await docker('image', 'rm', '-f', t).catch(() => '');
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('npm run release pushes, then signs and attests the digest, printing IMAGE@sha256 last', async () => {
      const start = performance.now();
      const r = await release([
        '--registry',
        registry.host,
        '--repository',
        REPO,
        '--tag',
        'v1',
        '--key',
        keyFile,
        '--image',
        IMAGE,
        '--record',
        recordFile,
      ]);
      assert.equal(r.code, 0, r.output);
      process.stdout.write(
        `# release (push + sign + 3 attestations): ${((performance.now() - start) / 1000).toFixed(1)} s\n`,
      );
      assert.match(r.last, new RegExp(`^${registry.host.replace(/\./g, '\\.')}/${REPO}@sha256:[a-f0-9]{64}$`));
      ref = r.last;
      digest = ref.split('@')[1]!;
      tagRef = `${registry.host}/${REPO}:v1`;
      localTags.push(tagRef);
      // Read back over the HTTP API: the manifest at the tag has exactly that digest.
      const m = await api.manifest(REPO, 'v1');
      assert.equal(m?.digest, digest);
      const tags = (await (await fetch(`http://${registry.host}/v2/${REPO}/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags.sort(), [digestTag(digest), `${digestTag(digest)}.sig`, 'v1'].sort());
    });

    it('stores the classic signature as cosign does, and openssl verifies it without the project code', async () => {
      const sig = (await api.manifest(REPO, `${digestTag(digest)}.sig`))!;
      assert.equal(sig.mediaType, MEDIA.ociManifest);
      const [layer] = descriptors(sig, 'layers');
      assert.equal(layer?.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
      const payload = await api.blob(REPO, layer.digest);
      assert.equal(
        payload.toString(),
        JSON.stringify({
          critical: {
            identity: { 'docker-reference': `${registry.host}/${REPO}` },
            image: { 'docker-manifest-digest': digest },
            type: 'cosign container image signature',
          },
          optional: null,
        }),
      );
      // Independent check: the payload blob as fetched over plain HTTP, openssl, the public key file.
      const blobFile = join(work, 'payload.json');
      const sigFile = join(work, 'payload.sig');
      const res = await fetch(`http://${registry.host}/v2/${REPO}/blobs/${layer.digest}`);
      await writeFile(blobFile, Buffer.from(await res.arrayBuffer()));
      await writeFile(sigFile, Buffer.from(layer.annotations![SIGNATURE_ANNOTATION]!, 'base64'));
      const { stdout } = await exec('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        pubFile,
        '-signature',
        sigFile,
        blobFile,
      ]);
      assert.equal(stdout.trim(), 'Verified OK');
      const wrong = await runCommand('openssl', [
        'dgst',
        '-sha256',
        '-verify',
        otherPub,
        '-signature',
        sigFile,
        blobFile,
      ]);
      assert.equal(wrong.code, 1, 'openssl refuses the signature under another key');
      assert.match(wrong.output, /^Verification failure$/m);
    });

    it('attaches Sigstore v0.3 bundles as OCI 1.1 referrers, listed in the referrers tag schema index', async () => {
      const index = (await api.manifest(REPO, digestTag(digest)))!;
      assert.equal(index.mediaType, MEDIA.ociIndex);
      const refs = descriptors(index, 'manifests');
      assert.deepEqual(
        refs.map((d) => d.annotations?.['dev.sigstore.bundle.predicateType']).sort(),
        [PREDICATE.sbom, PREDICATE.sign, PREDICATE.provenance].sort(),
      );
      const verifier = bundleVerifier(loadPublicKey(await readFile(pubFile, 'utf8')));
      const image = (await api.manifest(REPO, digest))!;
      for (const d of refs) {
        assert.equal(d.artifactType, MEDIA.bundle);
        const m = (await api.manifest(REPO, d.digest))!;
        assert.equal(m.json.artifactType, MEDIA.bundle);
        assert.deepEqual(m.json.subject, { mediaType: image.mediaType, digest, size: image.bytes.length });
        const [layer] = descriptors(m, 'layers');
        const bundle = JSON.parse((await api.blob(REPO, layer!.digest)).toString()) as { mediaType: string };
        assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
        // @sigstore/verify checks the DSSE signature with the public key.
        const stmt = verifyBundle(verifier, Buffer.from(JSON.stringify(bundle)));
        assert.equal(stmt.subject[0]?.digest.sha256, digest.slice('sha256:'.length));
      }
    });

    it('attests a CycloneDX 1.6 SBOM that is valid, equals the one shipped at /app/sbom.cdx.json, and lists what is in the image', async () => {
      const stmt = await attested(PREDICATE.sbom);
      const sbom = stmt.predicate as {
        specVersion: string;
        components: {
          name: string;
          group?: string;
          purl?: string;
          version?: string;
          type: string;
          licenses?: unknown[];
        }[];
      };
      const text = JSON.stringify(sbom);
      assert.equal(
        await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(text),
        null,
        'valid against the CycloneDX 1.6 JSON schema',
      );
      assert.equal(sbom.specVersion, '1.6');
      const shipped = (
        await pipeDocker(
          [
            'run',
            '--rm',
            '--entrypoint',
            '/nodejs/bin/node',
            IMAGE,
            '-e',
            'process.stdout.write(require("fs").readFileSync("/app/sbom.cdx.json"))',
          ],
          'cat',
          [],
        )
      ).toString();
      assert.deepEqual(JSON.parse(shipped), sbom, 'the attested SBOM is the shipped one');

      const byPurl = (p: RegExp) => sbom.components.filter((c) => c.purl !== undefined && p.test(c.purl));
      const lock = JSON.parse(await readFile('package-lock.json', 'utf8')) as {
        packages: Record<string, { version?: string; dev?: boolean }>;
      };
      const pino = byPurl(/^pkg:npm\/pino@/)[0];
      assert.equal(pino?.version, lock.packages['node_modules/pino']!.version);
      assert.deepEqual(pino?.licenses, [{ license: { id: 'MIT' } }]);
      // No development dependency is bundled, so none may be listed. A name is a
      // development one only if no runtime copy has it (a dev tool may nest its own
      // copy of a runtime dependency, as protoc-gen-es does @bufbuild/protobuf).
      const nameOf = (k: string) => k.slice(k.lastIndexOf('node_modules/') + 13);
      const runtimeNames = new Set(
        Object.entries(lock.packages)
          .filter(([k, v]) => k !== '' && v.dev !== true)
          .map(([k]) => nameOf(k)),
      );
      const devNames = new Set(
        Object.entries(lock.packages)
          .filter(([, v]) => v.dev === true)
          .map(([k]) => nameOf(k))
          .filter((n) => !runtimeNames.has(n)),
      );
      const npmNames = byPurl(/^pkg:npm\//).map((c) => (c.group ? `${c.group}/${c.name}` : c.name));
      assert.ok(npmNames.length > 10);
      assert.deepEqual(
        npmNames.filter((n) => devNames.has(n)),
        [],
        'no devDependency in the SBOM',
      );
      // Debian packages of the runtime base, exactly those recorded in its dpkg status files.
      const statusFiles = (
        await docker(
          'run',
          '--rm',
          '--entrypoint',
          '/nodejs/bin/node',
          IMAGE,
          '-p',
          'require("fs").readdirSync("/var/lib/dpkg/status.d").join(" ")',
        )
      )
        .split(' ')
        .filter((f) => !f.endsWith('.md5sums'));
      assert.deepEqual(
        byPurl(/^pkg:deb\/debian\//)
          .map((c) => c.name)
          .sort(),
        statusFiles.sort(),
      );
      assert.ok(statusFiles.includes('libc6') && statusFiles.includes('libstdc++6'));
      assert.match(byPurl(/^pkg:deb\/debian\/libc6@/)[0]!.purl!, /\?arch=amd64&distro=debian-13/);
      // Node itself, at the version the image's binary reports.
      const nodeVersion = await docker('run', '--rm', '--entrypoint', '/nodejs/bin/node', IMAGE, '--version');
      const runtime = sbom.components.find((c) => c.type === 'platform' && c.name === 'node');
      assert.equal(`v${runtime?.version}`, nodeVersion.trim());
    });

    it('attests SLSA v1 provenance: commit and repository, build arguments, both base images and package-lock.json', async () => {
      const stmt = await attested(PREDICATE.provenance);
      assert.equal(stmt._type, 'https://in-toto.io/Statement/v1');
      assert.deepEqual(stmt.subject, [{ name: `${registry.host}/${REPO}`, digest: { sha256: digest.slice(7) } }]);
      const p = stmt.predicate as {
        buildDefinition: {
          externalParameters: { source: { repository: string; commit: string }; buildArgs: Record<string, string> };
          resolvedDependencies: { name?: string; uri: string; digest: Record<string, string> }[];
        };
        runDetails: { builder: { id: string } };
      };
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
      assert.equal(p.buildDefinition.externalParameters.source.commit, head);
      assert.equal(
        p.buildDefinition.externalParameters.source.repository,
        'https://github.com/echo-server/echo-server.git',
      );
      const record = JSON.parse(await readFile(recordFile, 'utf8')) as {
        buildArgs: Record<string, string>;
        builderImage: string;
        runtimeImage: string;
      };
      assert.deepEqual(p.buildDefinition.externalParameters.buildArgs, record.buildArgs);
      const deps = p.buildDefinition.resolvedDependencies;
      assert.deepEqual(deps.find((d) => d.uri.startsWith('git+'))?.digest, { gitCommit: head });
      for (const [name, image] of [
        ['BUILDER_IMAGE', record.builderImage],
        ['RUNTIME_IMAGE', record.runtimeImage],
      ] as const) {
        const id = (await docker('image', 'inspect', '--format', '{{.Id}}', image)).replace('sha256:', '');
        assert.deepEqual(deps.find((d) => d.name === name)?.digest, { sha256: id }, `${name} ${image}`);
      }
      const lockHash = createHash('sha256')
        .update(await readFile('package-lock.json'))
        .digest('hex');
      assert.deepEqual(deps.find((d) => d.name === 'package-lock.json')?.digest, { sha256: lockHash });
    });

    it('npm run verify checks everything and exits 0 for the released digest', async () => {
      const r = await verify(ref);
      assert.equal(r.code, 0, r.output);
      assert.match(
        r.output,
        /ok +signature: ECDSA-P256\/SHA-256 .* verifies with the key; payload digest sha256:\w+ and identity \S+ match/,
      );
      for (const p of [PREDICATE.sign, PREDICATE.sbom, PREDICATE.provenance])
        assert.match(
          r.output,
          new RegExp(
            `ok +attestation ${p.replace(/\./g, '\\.')}: bundle signature verifies with the key; subject is ${digest}`,
          ),
        );
      assert.equal(r.last, `verify: VERIFIED ${ref}`);
    });

    it('without --image, npm run release builds the image itself (cached here) and releases it', async () => {
      const r = await release([
        '--registry',
        registry.host,
        '--repository',
        'es11/built',
        '--tag',
        'b1',
        '--key',
        keyFile,
        '--airgap',
      ]);
      localTags.push('es11/built:b1', `${registry.host}/es11/built:b1`);
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /image: .* build --tag es11\/built:b1 /, 'built through npm run image');
      assert.match(r.last, /^127\.0\.0\.1:\d+\/es11\/built@sha256:[a-f0-9]{64}$/);
      const v = await verify(r.last);
      assert.equal(v.code, 0, v.output);
    });

    describe('refusals (each must exit non-zero with a clear message)', () => {
      const refusals: string[] = [];
      after(() => {
        process.stdout.write(refusals.map((l) => `# refusal: ${l}\n`).join(''));
      });

      async function refused(label: string, target: string, pattern: RegExp, key = pubFile): Promise<void> {
        const r = await verify(target, key);
        assert.equal(r.code, 1, r.output);
        assert.match(r.last, /^verify: REFUSED /);
        assert.match(r.output, pattern);
        refusals.push(`${label}: ${r.last}`);
      }

      /** Replaces the `.sig` manifest for the test, then puts the original back. */
      async function withSignature(
        target: string,
        edit: (layer: Descriptor) => Promise<Descriptor>,
        check: () => Promise<void>,
      ): Promise<void> {
        const tag = `${digestTag(target)}.sig`;
        const original = (await api.manifest(REPO, tag))!;
        const json = structuredClone(original.json);
        const layers = json.layers as Descriptor[];
        layers[0] = await edit(layers[0]!);
        await api.putManifest(REPO, tag, MEDIA.ociManifest, Buffer.from(JSON.stringify(json)));
        try {
          await check();
        } finally {
          await api.putManifest(REPO, tag, original.mediaType, original.bytes);
        }
      }

      it('an unsigned image', async () => {
        const d = await pushPlain(`es11/tiny:${process.pid}-a`, `${registry.host}/${REPO}:unsigned`);
        await refused('unsigned image', `${registry.host}/${REPO}@${d}`, /FAIL +no signature: .* is not signed/);
      });

      it('a signature made with another key', async () => {
        await refused(
          'another key',
          ref,
          /FAIL +signature refused: the signature does not verify with the given key/,
          otherPub,
        );
      });

      it('a payload altered by one byte', async () => {
        await withSignature(
          digest,
          async (layer) => {
            const payload = await api.blob(REPO, layer.digest);
            const at = payload.indexOf('cosign container image signature');
            payload[at] = 'C'.charCodeAt(0);
            const d = await api.pushBlob(REPO, layer.mediaType, payload);
            return { ...layer, digest: d.digest, size: d.size };
          },
          () => refused('payload altered by one byte', ref, /FAIL +signature refused: the signature does not verify/),
        );
      });

      it('a signature altered by one byte', async () => {
        await withSignature(
          digest,
          (layer) => {
            const sig = Buffer.from(layer.annotations![SIGNATURE_ANNOTATION]!, 'base64');
            sig.writeUInt8(sig.readUInt8(sig.length - 1) ^ 0x01, sig.length - 1);
            return Promise.resolve({ ...layer, annotations: { [SIGNATURE_ANNOTATION]: sig.toString('base64') } });
          },
          () => refused('signature altered by one byte', ref, /FAIL +signature refused: the signature does not verify/),
        );
      });

      it('a signature copied from another digest', async () => {
        const other = await pushPlain(`es11/tiny:${process.pid}-b`, `${registry.host}/${REPO}:copied`);
        const sig = (await api.manifest(REPO, `${digestTag(digest)}.sig`))!;
        await api.putManifest(REPO, `${digestTag(other)}.sig`, sig.mediaType, sig.bytes);
        await refused(
          'signature copied from another digest',
          `${registry.host}/${REPO}@${other}`,
          new RegExp(`the signature is for digest ${digest}, not ${other} \\(copied from another image\\)`),
        );
      });

      it('a tag moved to a different image after signing (the digest itself still verifies)', async () => {
        await pushPlain(`es11/tiny:${process.pid}-a`, `${registry.host}/${REPO}:v1`);
        await refused(
          'tag moved after signing',
          `${registry.host}/${REPO}:v1`,
          /ok +tag v1 resolves to sha256:\w+ now[\s\S]*FAIL +no signature/,
        );
        const pinned = await verify(ref);
        assert.equal(pinned.code, 0, pinned.output);
        await pushPlain(IMAGE, tagRef); // put the tag back for the tests after this one
      });

      it('an attestation whose subject is another digest', async () => {
        const indexTag = digestTag(digest);
        const original = (await api.manifest(REPO, indexTag))!;
        const key = loadPrivateKey(await readFile(keyFile, 'utf8'), PASSWORD);
        const other = (await api.manifest(REPO, 'unsigned'))!.digest;
        // Correctly signed with the right key, and attached to this image, but about another digest.
        const bundle = await dsseBundle(key, statement(`${registry.host}/${REPO}`, other, PREDICATE.provenance, {}));
        const layer = await api.pushBlob(REPO, MEDIA.bundle, bundle);
        const empty = await api.pushBlob(REPO, MEDIA.ociEmpty, Buffer.from('{}'));
        const image = (await api.manifest(REPO, digest))!;
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MEDIA.ociManifest,
            artifactType: MEDIA.bundle,
            config: empty,
            layers: [layer],
            subject: { mediaType: image.mediaType, digest, size: image.bytes.length },
            annotations: { 'dev.sigstore.bundle.predicateType': PREDICATE.provenance },
          }),
        );
        const md = await api.putManifest(
          REPO,
          `sha256:${createHash('sha256').update(manifest).digest('hex')}`,
          MEDIA.ociManifest,
          manifest,
        );
        const json = structuredClone(original.json);
        (json.manifests as Descriptor[]).push({
          mediaType: MEDIA.ociManifest,
          digest: md,
          size: manifest.length,
          artifactType: MEDIA.bundle,
          annotations: { 'dev.sigstore.bundle.predicateType': PREDICATE.provenance },
        });
        await api.putManifest(REPO, indexTag, MEDIA.ociIndex, Buffer.from(JSON.stringify(json)));
        try {
          await refused(
            'attestation about another digest',
            ref,
            new RegExp(
              `FAIL +attestation https://slsa\\.dev/provenance/v1 refused: the statement's subject is ${other}, not ${digest}`,
            ),
          );
        } finally {
          await api.putManifest(REPO, indexTag, original.mediaType, original.bytes);
        }
      });

      it('an image that is not in the registry', async () => {
        const r = await verify(`${registry.host}/${REPO}@sha256:${'0'.repeat(64)}`);
        assert.equal(r.code, 1);
        assert.equal(
          r.output.trim(),
          `verify: ${registry.host}/${REPO}@sha256:${'0'.repeat(64)} is not in the registry`,
        );
        refusals.push(`image not in the registry: ${r.last}`);
      });
    });

    describe('bad input: one line, non-zero exit, nothing pushed', () => {
      const tagsOf = async (repo: string): Promise<number> =>
        (await fetch(`http://${registry.host}/v2/${repo}/tags/list`)).status;
      const base = () => ['--image', IMAGE, '--record', recordFile, '--tag', 'bad'];

      it('a registry that is down', async () => {
        const down = await startRegistry();
        await down.stop();
        const r = await release(['--registry', down.host, '--repository', 'es11/down', '--key', keyFile, ...base()]);
        assert.equal(r.code, 1);
        assert.equal(r.output.trim(), `release: registry ${down.host} is not reachable (ECONNREFUSED)`);
        process.stdout.write(`# bad input: ${r.last}\n`);
      });

      it('a wrong passphrase', async () => {
        const r = await release(
          ['--registry', registry.host, '--repository', 'es11/wrongpass', '--key', keyFile, ...base()],
          { COSIGN_PASSWORD: 'not it' },
        );
        assert.equal(r.code, 1);
        assert.equal(r.output.trim(), `release: ${keyFile}: wrong passphrase (the key did not decrypt)`);
        assert.equal(await tagsOf('es11/wrongpass'), 404, 'nothing was pushed');
        process.stdout.write(`# bad input: ${r.last}\n`);
      });

      it('a missing key file', async () => {
        const r = await release([
          '--registry',
          registry.host,
          '--repository',
          'es11/nokey',
          '--key',
          join(work, 'absent.key'),
          ...base(),
        ]);
        assert.equal(r.code, 1);
        assert.equal(
          r.output.trim(),
          `release: key file ${join(work, 'absent.key')} not found (make one with npm run keygen)`,
        );
        assert.equal(await tagsOf('es11/nokey'), 404, 'nothing was pushed');
        process.stdout.write(`# bad input: ${r.last}\n`);
      });

      it('a failure at the last step leaves nothing tagged as signed', async () => {
        // The real registry, with one fault injected: it refuses the final `.sig` manifest,
        // as a registry that goes down at that moment would.
        class FailingAtSignature extends Registry {
          override putManifest(
            repository: string,
            reference: string,
            mediaType: string,
            bytes: Buffer,
          ): Promise<string> {
            if (reference.endsWith('.sig')) return Promise.reject(new Error('injected: the registry went away'));
            return super.putManifest(repository, reference, mediaType, bytes);
          }
        }
        const d = await pushPlain(`es11/tiny:${process.pid}-a`, `${registry.host}/es11/halfway:h1`);
        const image = (await api.manifest('es11/halfway', d))!;
        const key = loadPrivateKey(await readFile(keyFile, 'utf8'), PASSWORD);
        const bundle = await dsseBundle(key, statement(`${registry.host}/es11/halfway`, d, PREDICATE.sign, {}));
        await assert.rejects(
          signAndAttach(
            new FailingAtSignature(registry.host),
            'es11/halfway',
            image,
            key,
            [{ predicateType: PREDICATE.sign, bundle }],
            new Date().toISOString(),
          ),
          /injected/,
        );
        assert.equal(await api.manifest('es11/halfway', `${digestTag(d)}.sig`), null, 'no signature tag');
        assert.equal(await api.manifest('es11/halfway', digestTag(d)), null, 'the referrers index was taken back');
        const r = await verify(`${registry.host}/es11/halfway@${d}`);
        assert.equal(r.code, 1);
        assert.match(r.output, /FAIL +no signature/);
      });

      it('a passphrase given any way but the environment is not taken', async () => {
        const r = await release(['--registry', registry.host, '--key', keyFile, '--password', PASSWORD, ...base()]);
        assert.equal(r.code, 2);
        assert.equal(r.output.trim(), 'release: unknown or incomplete argument --password');
      });
    });

    it('gives the application layer the same digest when the build runs again', async () => {
      const again = `${IMAGE}-rebuilt`;
      localTags.push(again);
      // REBUILD busts the cache of the build stage only: bundle, SBOM and file times are made anew.
      const r = await runCommand(
        process.execPath,
        ['scripts/image.ts', '--airgap', '--tag', again, '--', '--build-arg', `REBUILD=${Date.now()}`],
        { ...process.env, DOCKER },
      );
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /sbom: \d+ npm packages/, 'the build stage really ran again');
      const layers = async (image: string) =>
        JSON.parse(await docker('image', 'inspect', '--format', '{{json .RootFS.Layers}}', image)) as string[];
      const [first, second] = [await layers(IMAGE), await layers(again)];
      // The application layer is the one holding /app: the runtime base's layers come first, then passwd/group, then it.
      const baseCount = (
        await layers((JSON.parse(await readFile(recordFile, 'utf8')) as { runtimeImage: string }).runtimeImage)
      ).length;
      const appLayer = baseCount + 1;
      const appFiles = await appLayerFiles(IMAGE, appLayer);
      assert.ok(
        appFiles.includes('app/echo-server.cjs') && appFiles.includes('app/sbom.cdx.json'),
        `layer ${appLayer} holds the application: ${appFiles.join(' ')}`,
      );
      assert.equal(second[appLayer], first[appLayer], 'same application layer digest');
      process.stdout.write(`# reproducible application layer: ${first[appLayer]} on both builds\n`);
    });

    describe("the article's content trust: Notary signs the tag on push", () => {
      let notary: NotaryService;
      let env: NodeJS.ProcessEnv;
      const CT_REPO = 'es11/trusted';

      before(async () => {
        notary = await startNotary();
        const config = join(work, 'docker-config');
        // The Docker client trusts the Notary server's CA from $DOCKER_CONFIG/tls/<host:port>/ca.crt.
        await mkdir(join(config, 'tls', notary.host), { recursive: true });
        await writeFile(join(config, 'tls', notary.host, 'ca.crt'), await readFile(notary.caFile));
        env = {
          DOCKER_CONFIG: config,
          DOCKER_CONTENT_TRUST_SERVER: notary.url,
          DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE: 'es11 root passphrase',
          DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE: 'es11 repository passphrase',
        };
      });
      after(async () => {
        await notary?.stop();
      });

      const trusted = (args: string[]) =>
        runCommand(DOCKER, args, { ...process.env, ...env, DOCKER_CONTENT_TRUST: '1' });
      let signedDigest = '';

      it('npm run release -- --content-trust signs the tag through Notary; docker trust inspect shows it', async () => {
        const r = await release(
          [
            '--registry',
            registry.host,
            '--repository',
            CT_REPO,
            '--tag',
            'v1',
            '--content-trust',
            '--no-sign',
            '--image',
            IMAGE,
            '--record',
            recordFile,
          ],
          env,
        );
        assert.equal(r.code, 0, r.output);
        localTags.push(`${registry.host}/${CT_REPO}:v1`);
        assert.match(r.output, /Successfully signed 127\.0\.0\.1:\d+\/es11\/trusted:v1/);
        signedDigest = r.last.split('@')[1]!;
        const inspect = await trusted(['trust', 'inspect', `${registry.host}/${CT_REPO}:v1`]);
        assert.equal(inspect.code, 0, inspect.output);
        const [info] = JSON.parse(inspect.output) as { SignedTags: { SignedTag: string; Digest: string }[] }[];
        assert.deepEqual(
          info?.SignedTags.map((t) => [t.SignedTag, `sha256:${t.Digest}`]),
          [['v1', signedDigest]],
        );
      });

      it('with DOCKER_CONTENT_TRUST=1 the signed tag pulls and an unsigned tag is refused', async () => {
        const ok = await trusted(['pull', `${registry.host}/${CT_REPO}:v1`]);
        assert.equal(ok.code, 0, ok.output);
        assert.match(
          ok.output,
          new RegExp(`Pull \\(1 of 1\\): ${registry.host.replace(/\./g, '\\.')}/es11/trusted:v1@${signedDigest}`),
        );
        await pushPlain(`es11/tiny:${process.pid}-a`, `${registry.host}/${CT_REPO}:unsigned`);
        const refusedPull = await trusted(['pull', `${registry.host}/${CT_REPO}:unsigned`]);
        assert.notEqual(refusedPull.code, 0);
        assert.match(refusedPull.output, /No valid trust data for unsigned/);
        process.stdout.write(`# content trust refusal: ${refusedPull.output.trim().split('\n').pop()}\n`);
      });

      it('after the registry tag is re-pointed without signing, a trusted pull still gets the signed digest', async () => {
        const moved = await pushPlain(`es11/tiny:${process.pid}-b`, `${registry.host}/${CT_REPO}:v1`);
        assert.notEqual(moved, signedDigest);
        assert.equal(
          (await api.manifest(CT_REPO, 'v1'))?.digest,
          moved,
          'the registry tag really points elsewhere now',
        );
        const pull = await trusted(['pull', `${registry.host}/${CT_REPO}:v1`]);
        assert.equal(pull.code, 0, pull.output);
        assert.match(pull.output, new RegExp(`@${signedDigest}`));
        assert.doesNotMatch(pull.output, new RegExp(moved));
        const id = await docker('image', 'inspect', '--format', '{{.Id}}', `${registry.host}/${CT_REPO}:v1`);
        assert.equal(
          id,
          await docker('image', 'inspect', '--format', '{{.Id}}', IMAGE),
          'the local tag is the signed image',
        );
      });
    });

    /** The attested statement of one predicate type, verified with the public key. */
    async function attested(predicateType: string): Promise<Statement> {
      const index = (await api.manifest(REPO, digestTag(digest)))!;
      const d = descriptors(index, 'manifests').find(
        (x) => x.annotations?.['dev.sigstore.bundle.predicateType'] === predicateType,
      )!;
      const m = (await api.manifest(REPO, d.digest))!;
      const blob = await api.blob(REPO, descriptors(m, 'layers')[0]!.digest);
      return verifyBundle(bundleVerifier(loadPublicKey(await readFile(pubFile, 'utf8'))), blob);
    }
  },
);

/** The file names in one layer of a local image, from `docker save`. */
async function appLayerFiles(image: string, index: number): Promise<string[]> {
  const dir = await mkdtemp(join(work, 'save-'));
  await pipeDocker(['save', image], 'tar', ['-x', '-C', dir]);
  const [manifest] = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  const { stdout } = await exec('tar', ['-tf', join(dir, manifest!.Layers[index]!)], { maxBuffer: 16 * 1024 * 1024 });
  await rm(dir, { recursive: true, force: true });
  return stdout.split('\n').filter(Boolean);
}
