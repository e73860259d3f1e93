// `npm run release`: build (or take) the image, push it, resolve its digest, then sign
// and attest that digest (never a tag). The last line on stdout is the image reference
// with @sha256:…
//
//   npm run release -- --registry HOST:PORT [--repository NAME] [--tag TAG] [--key FILE]
//                      [--image LOCAL --record FILE] [--airgap] [--content-trust] [--no-sign]
//                      [--platform linux/amd64,linux/arm64]
//
// --key         cosign-format private key (default cosign.key); passphrase from $COSIGN_PASSWORD
// --image       release an image already built by `npm run image -- --record FILE`
// --content-trust  push with DOCKER_CONTENT_TRUST=1: the Docker client signs the tag
//               through the Notary server in $DOCKER_CONTENT_TRUST_SERVER (the article's way)
// --no-sign     skip the cosign-style signatures (with --content-trust: the article only)
// --platform    several platforms under one reference: each image is pushed (as TAG-ARCH)
//               signed and attested, then an OCI image index listing them is put at TAG
//               and signed; the last line is then the index's digest. With --image, the
//               record written by `npm run image -- --platform …` says which images.
//
// Everything that can fail without a push is checked first (key, passphrase, registry).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptArgs } from './lib/args.ts';
import { headCommit, workingTreeModified } from './lib/git.ts';
import { KeyError, loadPrivateKey, passphraseFromEnv } from './supply-chain/keys.ts';
import { Registry, RegistryError, type Manifest } from './supply-chain/registry.ts';
import { dsseBundle, PREDICATE, signAndAttach, statement } from './supply-chain/sign.ts';
import { platformName, publishIndex } from './supply-chain/image-index.ts';

class ReleaseError extends Error {}

const docker = process.env.DOCKER ?? (existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');
const { values: opts } = scriptArgs('release', {
  options: {
    registry: { type: 'string' },
    repository: { type: 'string', default: 'echo-server' },
    tag: { type: 'string' },
    key: { type: 'string', default: 'cosign.key' },
    image: { type: 'string' },
    record: { type: 'string' },
    platform: { type: 'string' },
    airgap: { type: 'boolean', default: false },
    'content-trust': { type: 'boolean', default: false },
    // A literal option, not parseArgs' --no-<flag> negation: there is no --sign to negate.
    'no-sign': { type: 'boolean', default: false },
  },
});

function fail(message: string, code = 1): never {
  console.error(`release: ${message}`);
  process.exit(code);
}

interface BuildRecord {
  tag: string;
  buildArgs: Record<string, string>;
  builderImage: string;
  runtimeImage: string;
  extraArgs: string[];
  startedOn: string;
  finishedOn: string;
  platform?: string;
}

/** What `npm run image -- --platform a,b --record FILE` writes: one record per platform. */
interface MultiRecord {
  tag: string;
  platforms: BuildRecord[];
}

function dockerOut(...a: string[]): string {
  return execFileSync(docker, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Runs docker with output shown on stderr and captured; rejects with the last line on failure. */
function dockerRun(a: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(docker, a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (c: Buffer): void => {
      out += c.toString();
      process.stderr.write(c);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new ReleaseError(`docker ${a[0]} failed: ${out.trim().split('\n').pop() ?? `exit ${code}`}`));
    });
  });
}

/** A base image as a resolved dependency: its registry digest when it has one, else its local image ID. */
function baseDependency(name: string, image: string): Record<string, unknown> {
  const info = JSON.parse(dockerOut('image', 'inspect', '--format', '{{json .}}', image)) as {
    Id: string;
    RepoDigests: string[] | null;
  };
  const repoDigest = (info.RepoDigests ?? [])[0];
  if (repoDigest) return { name, uri: `docker-image://${image}`, digest: { sha256: repoDigest.split('@sha256:')[1] } };
  return {
    name,
    uri: `docker-image://${image}`,
    digest: { sha256: info.Id.replace(/^sha256:/, '') },
    annotations: { digestKind: 'image ID (config digest): a locally built base that was never in a registry' },
  };
}

function provenance(record: BuildRecord, target: string): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { repository?: { url: string } };
  const repoUrl = (pkg.repository?.url ?? '').replace(/^git\+/, '');
  const commit = record.buildArgs.COMMIT_HASH ?? headCommit();
  const dirty = workingTreeModified();
  const lockDigest = createHash('sha256').update(readFileSync('package-lock.json')).digest('hex');
  return {
    buildDefinition: {
      buildType: 'https://github.com/echo-server/echo-server/blob/main/docs/supply-chain.md#verify-the-image',
      externalParameters: {
        source: { repository: repoUrl, ref: record.buildArgs.BRANCH ?? '', commit },
        dockerfile: 'Dockerfile',
        buildArgs: record.buildArgs,
        extraDockerArgs: record.extraArgs,
        image: target,
        ...(record.platform ? { platform: record.platform } : {}),
      },
      internalParameters: { dockerClient: docker, workingTreeModified: dirty },
      resolvedDependencies: [
        { uri: `git+${repoUrl}`, digest: { gitCommit: commit }, annotations: { workingTreeModified: dirty } },
        baseDependency('BUILDER_IMAGE', record.builderImage),
        baseDependency('RUNTIME_IMAGE', record.runtimeImage),
        { name: 'package-lock.json', uri: 'file:package-lock.json', digest: { sha256: lockDigest } },
      ],
    },
    runDetails: {
      builder: {
        id: 'https://github.com/echo-server/echo-server/blob/main/scripts/release.ts',
        version: { docker: dockerOut('version', '--format', '{{.Server.Version}}') },
      },
      metadata: { invocationId: randomUUID(), startedOn: record.startedOn, finishedOn: record.finishedOn },
    },
  };
}

/** The SBOM shipped inside the image, read from the image itself so the attestation matches it. */
function sbomFromImage(image: string): unknown {
  const id = dockerOut('create', image);
  const dir = mkdtempSync(join(tmpdir(), 'release-sbom-'));
  try {
    execFileSync(docker, ['cp', `${id}:/app/sbom.cdx.json`, join(dir, 'sbom.json')], { stdio: 'ignore' });
    return JSON.parse(readFileSync(join(dir, 'sbom.json'), 'utf8'));
  } catch {
    throw new ReleaseError(`${image} has no /app/sbom.cdx.json (built before SBOMs were added?)`);
  } finally {
    execFileSync(docker, ['rm', id], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const registryHost = opts.registry ?? fail('--registry HOST:PORT is required', 2);
  const repository = opts.repository;
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const tag = opts.tag ?? version;
  const sign = !opts['no-sign'];
  const contentTrust = opts['content-trust'];
  if (!/^[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(repository))
    throw new ReleaseError(`invalid repository name "${repository}"`);

  // 1. everything that can be checked before a push
  let key: KeyObject | undefined;
  if (sign) {
    const keyFile = opts.key;
    if (!existsSync(keyFile)) throw new ReleaseError(`key file ${keyFile} not found (make one with npm run keygen)`);
    try {
      key = loadPrivateKey(readFileSync(keyFile, 'utf8'), passphraseFromEnv());
    } catch (e) {
      throw new ReleaseError(`${keyFile}: ${(e as Error).message}`);
    }
  }
  if (contentTrust && opts.platform !== undefined)
    throw new ReleaseError(
      '--content-trust signs the one tag a push names; it cannot sign a multi-platform index (use the cosign-style signatures)',
    );
  if (contentTrust) {
    for (const v of [
      'DOCKER_CONTENT_TRUST_SERVER',
      'DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE',
      'DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE',
    ]) {
      if (!process.env[v]) throw new ReleaseError(`--content-trust needs ${v} in the environment`);
    }
  }
  const registry = new Registry(registryHost);
  await registry.ping();

  // 2. the image and what built it
  let record: BuildRecord;
  const local = opts.image;
  if (local !== undefined) {
    const recordFile =
      opts.record ??
      fail('--image needs --record FILE (written by npm run image -- --record FILE) for the provenance', 2);
    const read = JSON.parse(readFileSync(recordFile, 'utf8')) as BuildRecord | MultiRecord;
    if ('platforms' in read) {
      await releasePlatforms(registry, registryHost, repository, tag, key, read.platforms);
      return;
    }
    try {
      dockerOut('image', 'inspect', local);
    } catch {
      throw new ReleaseError(`local image ${local} not found`);
    }
    record = read;
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'release-'));
    const recordFile = join(dir, 'record.json');
    let multi: BuildRecord[] | undefined;
    const built = `${repository}:${tag}`; // the local name mirrors the repository
    try {
      const imageArgs = [
        'scripts/image.ts',
        '--tag',
        built,
        '--record',
        recordFile,
        ...(opts.airgap ? ['--airgap'] : []),
      ];
      const platforms = opts.platform;
      if (platforms !== undefined) imageArgs.push('--platform', platforms);
      execFileSync(process.execPath, imageArgs, {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, DOCKER: docker },
      });
      const read = JSON.parse(readFileSync(recordFile, 'utf8')) as BuildRecord | MultiRecord;
      if ('platforms' in read) multi = read.platforms;
      record = 'platforms' in read ? read.platforms[0]! : read;
    } catch (e) {
      throw new ReleaseError(
        `the image build failed${e instanceof Error && 'status' in e ? ` (exit ${String((e as { status: unknown }).status)})` : ''}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    if (multi) {
      await releasePlatforms(registry, registryHost, repository, tag, key, multi);
      return;
    }
  }
  const source = local ?? record.tag;

  // 3. push, then resolve the digest from the registry (the tag is only a way to find it)
  const target = `${registryHost}/${repository}:${tag}`;
  dockerOut('tag', source, target);
  const env = { ...process.env };
  if (contentTrust) env.DOCKER_CONTENT_TRUST = '1';
  const pushed = await dockerRun(['push', target], env);
  if (contentTrust && !/Successfully signed/.test(pushed))
    throw new ReleaseError('the content-trust push did not report "Successfully signed"');
  const image = await registry.manifest(repository, tag);
  if (!image) throw new ReleaseError(`${target} is not in the registry after the push`);
  const pushedDigest = /digest: (sha256:[a-f0-9]{64})/.exec(pushed)?.[1];
  if (pushedDigest && pushedDigest !== image.digest)
    throw new ReleaseError(
      `the tag moved during the release: pushed ${pushedDigest}, the registry now has ${image.digest}`,
    );
  const name = `${registryHost}/${repository}`;

  // 4. sign and attest the digest
  if (key) await signImage(registry, repository, name, image, key, source, record, target);
  if (contentTrust)
    console.error(`release: tag ${tag} signed through Notary (${process.env.DOCKER_CONTENT_TRUST_SERVER})`);
  console.log(`${name}@${image.digest}`);
}

/** Signs `image` and attests its SBOM (read from the local image `source`) and provenance. */
async function signImage(
  registry: Registry,
  repository: string,
  name: string,
  image: Manifest,
  key: KeyObject,
  source: string,
  record: BuildRecord,
  target: string,
): Promise<void> {
  const created = new Date().toISOString();
  const attachments = [
    { predicateType: PREDICATE.sign, bundle: await dsseBundle(key, statement(name, image.digest, PREDICATE.sign, {})) },
    {
      predicateType: PREDICATE.sbom,
      bundle: await dsseBundle(key, statement(name, image.digest, PREDICATE.sbom, sbomFromImage(source))),
    },
    {
      predicateType: PREDICATE.provenance,
      bundle: await dsseBundle(key, statement(name, image.digest, PREDICATE.provenance, provenance(record, target))),
    },
  ];
  const result = await signAndAttach(registry, repository, image, key, attachments, created);
  console.error(
    `release: signed ${name}@${image.digest} (${result.signatureTag}); attested ${result.referrers.map((r) => r.predicateType).join(', ')} as referrers`,
  );
}

/**
 * Several platforms under one reference: each image is pushed as TAG-ARCH, then the index
 * listing them goes to TAG. Each platform's manifest is signed with its own SBOM and
 * provenance, and the index is signed last, so the reference users pull is signed only
 * once everything it points to is.
 */
async function releasePlatforms(
  registry: Registry,
  registryHost: string,
  repository: string,
  tag: string,
  key: KeyObject | undefined,
  records: BuildRecord[],
): Promise<void> {
  const name = `${registryHost}/${repository}`;
  const pushed: { record: BuildRecord; image: Manifest; target: string }[] = [];
  for (const record of records) {
    if (!record.platform) throw new ReleaseError(`the record of ${record.tag} names no platform`);
    try {
      dockerOut('image', 'inspect', record.tag);
    } catch {
      throw new ReleaseError(`local image ${record.tag} (${record.platform}) not found`);
    }
    const perTag = `${tag}-${record.platform.split('/')[1]!}`;
    const target = `${name}:${perTag}`;
    dockerOut('tag', record.tag, target);
    const out = await dockerRun(['push', target], { ...process.env });
    const image = await registry.manifest(repository, perTag);
    if (!image) throw new ReleaseError(`${target} is not in the registry after the push`);
    const pushedDigest = /digest: (sha256:[a-f0-9]{64})/.exec(out)?.[1];
    if (pushedDigest && pushedDigest !== image.digest)
      throw new ReleaseError(
        `the tag moved during the release: pushed ${pushedDigest}, the registry now has ${image.digest}`,
      );
    pushed.push({ record, image, target });
  }
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  const revision = records[0]!.buildArgs.COMMIT_HASH ?? '';
  const index = await publishIndex(
    registry,
    repository,
    tag,
    pushed.map((p) => p.image),
    {
      'org.opencontainers.image.version': version,
      ...(revision ? { 'org.opencontainers.image.revision': revision } : {}),
    },
  );
  const listed = index.json.manifests as {
    digest: string;
    platform: { os: string; architecture: string; variant?: string };
  }[];
  for (const p of pushed) {
    const entry = listed.find((m) => m.digest === p.image.digest)!;
    if (platformName(entry.platform) !== p.record.platform)
      throw new ReleaseError(
        `${p.record.tag} was built for ${p.record.platform} but its config says ${platformName(entry.platform)}`,
      );
    console.error(`release: ${platformName(entry.platform)} ${name}@${p.image.digest}`);
  }
  if (key) {
    for (const p of pushed) await signImage(registry, repository, name, p.image, key, p.record.tag, p.record, p.target);
    const stmt = statement(name, index.digest, PREDICATE.sign, {});
    const result = await signAndAttach(
      registry,
      repository,
      index,
      key,
      [{ predicateType: PREDICATE.sign, bundle: await dsseBundle(key, stmt) }],
      new Date().toISOString(),
    );
    console.error(`release: signed the index ${name}@${index.digest} (${result.signatureTag})`);
  }
  console.log(`${name}@${index.digest}`);
}

main().catch((e: unknown) => {
  if (e instanceof ReleaseError || e instanceof RegistryError || e instanceof KeyError) fail(e.message);
  fail(e instanceof Error ? e.message : String(e));
});
