// Multi-arch, end to end against real components: both platforms built by one
// `npm run image -- --platform linux/amd64,linux/arm64 --airgap` (with arm64 emulation
// switched off during that build, so it cannot have run arm64 code), pushed to Debian's
// distribution registry under one OCI image index by `npm run release`, each platform
// signed with its own SBOM and provenance, the index signed, all checked by
// `npm run verify`; each image's Node binary read for its architecture; both platforms
// pulled by the Docker client from the one reference; the arm64 image run under QEMU.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers.ts';
import { DOCKER, docker, engineAvailable, pipeDocker, runCommand, waitForStatus } from '../image/docker.ts';
import { startRegistry, type Service } from '../supply-chain/services.ts';
import { loadPublicKey } from '../../scripts/supply-chain/keys.ts';
import { digestTag, MEDIA, Registry, type Descriptor } from '../../scripts/supply-chain/registry.ts';
import { PREDICATE } from '../../scripts/supply-chain/sign.ts';
import { bundleVerifier, verifyBundle } from '../../scripts/supply-chain/verify.ts';
import { elfMachine, enabled, setEnabled, setUpArm64Emulation } from './emulation.ts';

const mustRun = process.env.CI === 'true';
const missing = ['docker-registry', 'openssl'].filter(
  (t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0,
);
const engine = engineAvailable();
const emulation = engine ? setUpArm64Emulation() : { ok: false, notInstalled: false, reason: 'no Docker engine' };
// The kernel refusing binfmt_misc is the one thing CI cannot fix by installing a package:
// then the suite is skipped, loudly. Anything else missing fails in CI.
const refusedByKernel = engine && !emulation.ok && !emulation.notInstalled;
const skip = refusedByKernel
  ? `arm64 emulation unavailable: ${emulation.reason}`
  : !mustRun && (!engine || missing.length > 0 || !emulation.ok)
    ? `needs a Docker engine, ${missing.join(', ') || 'the registry'} and qemu-user-static`
    : false;
if (skip !== false) process.stderr.write(`\n*** MULTI-ARCH TESTS SKIPPED: ${skip} ***\n`);

const PASSWORD = 'es15 test passphrase';
const TAG = `es15/echo-server:test-${process.pid}`;
const REPO = 'es15/echo-server';
const PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
const localRefs: string[] = [];
const containers: string[] = [];

describe('multi-arch: one signed reference for amd64 and arm64', { skip, timeout: 30 * 60_000 }, () => {
  let work: string;
  let registry: Service;
  let api: Registry;
  let recordFile: string;
  let pubFile: string;
  let ref = '';
  let indexDigest = '';
  let buildOutput = '';
  const image = (p: string) => `${TAG}-${p.split('/')[1]!}`;

  before(async () => {
    assert.ok(
      engine && missing.length === 0 && emulation.ok,
      `CI needs a Docker engine (${DOCKER}), ${missing.join(', ')} and arm64 emulation: ${emulation.reason}`,
    );
    work = await mkdtemp(join(tmpdir(), 'es15-multiarch-'));
    recordFile = join(work, 'record.json');
    registry = await startRegistry();
    api = new Registry(registry.host);
    const k = await runCommand(process.execPath, ['scripts/keygen.ts', '--prefix', join(work, 'cosign')], {
      ...process.env,
      COSIGN_PASSWORD: PASSWORD,
    });
    assert.equal(k.code, 0, k.output);
    pubFile = join(work, 'cosign.pub');
    // The stand-in bases need emulation once (Debian's arm64 maintainer scripts); cached after.
    const bases = await runCommand('bash', ['scripts/airgap-bases.sh', '--arch', 'arm64'], { ...process.env, DOCKER });
    assert.equal(bases.code, 0, bases.output);
    // The image build must not: arm64 emulation is off while it runs.
    localRefs.push(...PLATFORMS.map(image));
    setEnabled(false);
    const start = performance.now();
    try {
      const build = await runCommand(
        process.execPath,
        [
          'scripts/image.ts',
          '--airgap',
          '--platform',
          PLATFORMS.join(','),
          '--tag',
          TAG,
          '--record',
          recordFile,
          // A new bundle each run, so the per-platform SBOM step really runs (without emulation).
          '--',
          '--progress=plain',
          '--build-arg',
          `REBUILD=es15-${process.pid}-${Date.now()}`,
        ],
        { ...process.env, DOCKER },
      );
      buildOutput = build.output;
      assert.equal(build.code, 0, build.output);
    } finally {
      setEnabled(true);
    }
    process.stdout.write(
      `# multi-arch: both platforms built in ${((performance.now() - start) / 1000).toFixed(0)} s with arm64 emulation off\n`,
    );
  });

  after(async () => {
    for (const c of containers) await docker('rm', '-f', c).catch(() => '');
    for (const r of localRefs) await docker('image', 'rm', '-f', r).catch(() => '');
    if (!enabled()) setEnabled(true);
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds one image per platform from one command, the build stages once, no arm64 code run', async () => {
    for (const p of PLATFORMS) {
      assert.equal(await docker('image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', image(p)), p);
    }
    // The second (arm64) build took deps, lint and tests from the first one's cache.
    const second = buildOutput.slice(buildOutput.indexOf('--platform linux/arm64'));
    for (const step of [
      'npm ci --no-audit',
      'npm run --silent lint',
      'npm run --silent test:code',
      'npm run --silent build',
    ]) {
      assert.match(
        second,
        new RegExp(`\\] RUN [^\\n]*${step.replace(/ /g, ' ')}[^\\n]*\\n(#\\d+ sha256:[^\\n]*\\n)?#\\d+ CACHED`),
        `${step} came from the cache in the arm64 build`,
      );
    }
    assert.match(
      second,
      /sbom: \d+ npm packages, \d+ Debian packages, node 24\.\d+\.\d+/,
      'the arm64 SBOM step ran, on the build platform',
    );
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as {
      platforms: { platform: string; tag: string; runtimeImage: string; builderImage: string }[];
    };
    assert.deepEqual(
      record.platforms.map((r) => [r.platform, r.tag]),
      PLATFORMS.map((p) => [p, image(p)]),
    );
    assert.equal(
      record.platforms[0]!.builderImage,
      record.platforms[1]!.builderImage,
      "one builder (the build machine's) for both",
    );
    assert.match(record.platforms[1]!.runtimeImage, /-arm64$/);
  });

  it('puts a Node binary of the right architecture in each image, with the loader it needs', async () => {
    for (const [p, machine, loader] of [
      ['linux/amd64', 'x86-64', '/lib64/ld-linux-x86-64.so.2'],
      ['linux/arm64', 'aarch64', '/lib/ld-linux-aarch64.so.1'],
    ] as const) {
      const id = await docker('create', '--platform', p, image(p));
      try {
        const copy = join(work, `node-${machine}`);
        await docker('cp', `${id}:/nodejs/bin/node`, copy);
        const head = Buffer.alloc(64);
        const fh = await open(copy);
        await fh.read(head, 0, 64, 0);
        await fh.close();
        await rm(copy);
        assert.equal(elfMachine(head), machine, `${p}: /nodejs/bin/node is ${machine}`);
        const loaderCopy = await runCommand(DOCKER, ['cp', `${id}:${loader}`, join(work, `loader-${machine}`)]);
        assert.equal(loaderCopy.code, 0, `${p} has ${loader}: ${loaderCopy.output}`);
        const sbom = JSON.parse(
          (await pipeDocker(['cp', `${id}:/app/sbom.cdx.json`, '-'], 'sh', ['-c', 'tar -xOf -'])).toString(),
        ) as { components: { purl?: string }[] };
        const arch = p.split('/')[1]!;
        const debs = sbom.components.filter((c) => c.purl?.startsWith('pkg:deb/'));
        assert.ok(
          debs.length > 3 && debs.every((c) => c.purl!.includes(`arch=${arch}`) || c.purl!.includes('arch=all')),
          `${p}: every Debian package in its SBOM is ${arch} or architecture-independent`,
        );
        assert.ok(
          debs.some((c) => c.purl!.startsWith('pkg:deb/debian/libc6@') && c.purl!.includes(`arch=${arch}`)),
          `${p}: libc6 is ${arch}`,
        );
        assert.ok(
          sbom.components.some((c) => c.purl?.includes(`linux-${arch === 'amd64' ? 'x64' : 'arm64'}.tar.xz`)),
          `${p}: the SBOM's node is the ${arch} build`,
        );
      } finally {
        await docker('rm', id);
      }
    }
  });

  it('gives the arm64 stand-in base the same contents and package records as the amd64 one', async () => {
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as { platforms: { runtimeImage: string }[] };
    const [amd, arm] = await Promise.all(record.platforms.map((r) => baseListing(r.runtimeImage)));
    // Up to the names the architectures' ABIs fix: the multiarch triplet and the loader's path.
    const norm = (files: string[]) =>
      files
        .filter((f) => f !== '/lib64')
        .map((f) =>
          f
            .replace(/x86_64-linux-gnu|aarch64-linux-gnu/g, '<triplet>')
            .replace(/^\/lib64\/ld-linux-x86-64\.so\.2$|^\/lib\/ld-linux-aarch64\.so\.1$/, '<loader>'),
        )
        .sort();
    assert.deepEqual(norm(arm!.files), norm(amd!.files), 'the same files, up to the architecture triplet');
    assert.deepEqual(arm!.packages, amd!.packages, 'the same packages recorded in /var/lib/dpkg/status.d');
  });

  it('npm run release pushes both, publishes an OCI index with their platforms at the tag, and signs everything', async () => {
    const start = performance.now();
    const r = await runCommand(
      process.execPath,
      [
        'scripts/release.ts',
        '--registry',
        registry.host,
        '--repository',
        REPO,
        '--tag',
        'v1',
        '--key',
        join(work, 'cosign.key'),
        '--image',
        TAG,
        '--record',
        recordFile,
      ],
      { ...process.env, DOCKER, COSIGN_PASSWORD: PASSWORD },
    );
    assert.equal(r.code, 0, r.output);
    process.stdout.write(
      `# multi-arch release (2 pushes, index, 2 x 3 attestations, index signature): ${((performance.now() - start) / 1000).toFixed(1)} s\n`,
    );
    ref = r.output.trim().split('\n').pop()!;
    assert.match(ref, new RegExp(`^${registry.host.replace(/\./g, '\\.')}/${REPO}@sha256:[a-f0-9]{64}$`));
    indexDigest = ref.split('@')[1]!;
    localRefs.push(...['v1-amd64', 'v1-arm64'].map((t) => `${registry.host}/${REPO}:${t}`));

    const index = (await api.manifest(REPO, 'v1'))!;
    assert.equal(index.digest, indexDigest);
    assert.equal(index.mediaType, MEDIA.ociIndex);
    const entries = index.json.manifests as (Descriptor & { platform: Record<string, string> })[];
    assert.deepEqual(
      entries.map((e) => e.platform),
      [
        { architecture: 'amd64', os: 'linux' },
        { architecture: 'arm64', os: 'linux' },
      ],
    );
    for (const e of entries) {
      const arch = e.platform.architecture!;
      const m = (await api.manifest(REPO, e.digest))!;
      assert.equal(
        (await api.manifest(REPO, `v1-${arch}`))?.digest,
        e.digest,
        `the ${arch} entry is the image pushed as v1-${arch}`,
      );
      assert.deepEqual([e.mediaType, e.size], [m.mediaType, m.bytes.length]);
      const config = JSON.parse((await api.blob(REPO, (m.json.config as Descriptor).digest)).toString()) as {
        architecture: string;
        os: string;
      };
      assert.deepEqual(
        [config.os, config.architecture],
        ['linux', arch],
        'the platform field matches the image config',
      );
    }
    // Signed: the index, and each platform with its own SBOM and provenance.
    const verifier = bundleVerifier(loadPublicKey(await readFile(pubFile, 'utf8')));
    for (const [digest, want] of [
      [indexDigest, [PREDICATE.sign]],
      ...entries.map((e) => [e.digest, [PREDICATE.sign, PREDICATE.sbom, PREDICATE.provenance]] as const),
    ] as const) {
      assert.ok(await api.manifest(REPO, `${digestTag(digest)}.sig`), `${digest} has a signature`);
      const referrers = (await api.manifest(REPO, digestTag(digest)))!.json.manifests as Descriptor[];
      assert.deepEqual(
        referrers.map((d) => d.annotations?.['dev.sigstore.bundle.predicateType']).sort(),
        [...want].sort(),
      );
    }
    const arm = entries.find((e) => e.platform.architecture === 'arm64')!;
    const prov = await statementOf(arm.digest, PREDICATE.provenance, verifier);
    const params = (
      prov.predicate as {
        buildDefinition: { externalParameters: { platform: string; buildArgs: Record<string, string> } };
      }
    ).buildDefinition.externalParameters;
    assert.equal(params.platform, 'linux/arm64');
    assert.match(params.buildArgs.RUNTIME_IMAGE!, /nonroot-arm64$/);
    const sbom = await statementOf(arm.digest, PREDICATE.sbom, verifier);
    assert.match(JSON.stringify(sbom.predicate), /pkg:deb\/debian\/libc6@[^"]*arch=arm64/);
  });

  it('npm run verify checks the index and every platform under it, and refuses when one platform is unsigned', async () => {
    const ok = await runCommand(process.execPath, ['scripts/verify.ts', ref, '--key', pubFile]);
    assert.equal(ok.code, 0, ok.output);
    assert.match(ok.output, new RegExp(`ok +index ${indexDigest} lists linux/amd64, linux/arm64`));
    for (const p of PLATFORMS) {
      assert.match(ok.output, new RegExp(`ok +\\[${p}\\] signature: ECDSA-P256`));
      for (const pred of [PREDICATE.sbom, PREDICATE.provenance])
        assert.match(ok.output, new RegExp(`ok +\\[${p}\\] attestation ${pred.replace(/\./g, '\\.')}`));
    }
    assert.match(ok.output, new RegExp(`verify: VERIFIED ${ref.replace(/\./g, '\\.')}`));

    // Take the arm64 signature away: the index's own signature still verifies, the whole does not.
    const arm = (
      (await api.manifest(REPO, indexDigest))!.json.manifests as (Descriptor & { platform: { architecture: string } })[]
    ).find((e) => e.platform.architecture === 'arm64')!;
    const sigTag = `${digestTag(arm.digest)}.sig`;
    const sig = (await api.manifest(REPO, sigTag))!;
    await api.deleteManifest(REPO, sig.digest);
    try {
      const refused = await runCommand(process.execPath, ['scripts/verify.ts', ref, '--key', pubFile]);
      assert.equal(refused.code, 1, refused.output);
      assert.match(refused.output, /FAIL +\[linux\/arm64\] no signature/);
      process.stdout.write(`# multi-arch refusal: ${refused.output.trim().split('\n').pop()}\n`);
    } finally {
      await api.putManifest(REPO, sigTag, sig.mediaType, sig.bytes);
    }
  });

  it('the Docker client pulls either platform from the one reference', async () => {
    for (const p of PLATFORMS) {
      const pull = await runCommand(DOCKER, ['pull', '--platform', p, ref]);
      assert.equal(pull.code, 0, pull.output);
      const pulled = await docker('image', 'inspect', '--format', '{{.Id}} {{.Os}}/{{.Architecture}}', ref);
      assert.equal(
        pulled,
        `${await docker('image', 'inspect', '--format', '{{.Id}}', image(p))} ${p}`,
        `pulling ${p} gives the ${p} image`,
      );
      // The local store maps a digest to one image: drop the reference before the other platform.
      await docker('image', 'rm', ref);
    }
  });

  it('runs the arm64 image under QEMU: healthy, echoes, stops cleanly', async () => {
    const name = `es15-arm64-${process.pid}`;
    containers.push(name);
    const start = performance.now();
    // Docker 20.10 probes first after one interval: a short one, as an operator can pass.
    await docker(
      'run',
      '-d',
      '--name',
      name,
      '--platform',
      'linux/arm64',
      '-p',
      '127.0.0.1::8080',
      '--health-interval',
      '1s',
      '--health-timeout',
      '30s',
      image('linux/arm64'),
    );
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', name, '8080/tcp'))![1]);
    // Two figures: the server answering, and Docker calling it healthy (its own probe is an
    // emulated Node start too, one interval after the container's).
    const answering = waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/livez`)).ok,
      180_000,
      'the arm64 container answers /livez',
      100,
    ).then(() => performance.now() - start);
    await waitForStatus(name, 'healthy', 180_000);
    const toHealthy = performance.now() - start;
    const toAnswer = await answering;
    const text = await (await fetch(`http://127.0.0.1:${port}/es15?x=1`, { headers: { 'x-probe': 'arm64' } })).text();
    assert.match(text, /^Method: GET$/m);
    assert.match(text, /^RequestURI: \/es15\?x=1$/m);
    assert.match(text, /"x-probe":\["arm64"\]/i);
    const json = (await (
      await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: 'application/json' } })
    ).json()) as { method: string };
    assert.equal(json.method, 'GET');
    assert.equal((await fetch(`http://127.0.0.1:${port}/?echo_status=418`)).status, 418);
    const arch = await docker('exec', name, '/nodejs/bin/node', '-p', 'process.arch');
    assert.equal(arch, 'arm64', 'the server really is the arm64 Node, emulated');
    await docker('stop', '--time', '30', name);
    assert.equal(await docker('inspect', '--format', '{{.State.ExitCode}}', name), '0');
    process.stdout.write(
      `# multi-arch: arm64 under QEMU: docker run -> answering in ${(toAnswer / 1000).toFixed(1)} s, healthy in ${(toHealthy / 1000).toFixed(1)} s (health interval 1s)\n`,
    );
  });

  it('reports both image sizes', async () => {
    const sizes: string[] = [];
    for (const p of PLATFORMS) {
      const size = Number(await docker('image', 'inspect', '--format', '{{.Size}}', image(p)));
      // What a pull downloads: the pushed (gzip-compressed) layers, from the registry's manifest.
      const m = (await api.manifest(REPO, `v1-${p.split('/')[1]!}`))!;
      const pull = (m.json.layers as Descriptor[]).reduce((n, l) => n + l.size, 0);
      assert.ok(size > 50e6 && size < 250e6, `${p}: ${size} bytes`);
      assert.ok(pull > 10e6 && pull < size, `${p}: ${pull} bytes to pull`);
      sizes.push(`${p} ${(size / 1e6).toFixed(1)} MB uncompressed, ${(pull / 1e6).toFixed(1)} MB compressed layers`);
    }
    process.stdout.write(`# multi-arch sizes: ${sizes.join('; ')}\n`);
  });

  async function statementOf(digest: string, predicateType: string, verifier: ReturnType<typeof bundleVerifier>) {
    const index = (await api.manifest(REPO, digestTag(digest)))!;
    const d = (index.json.manifests as Descriptor[]).find(
      (x) => x.annotations?.['dev.sigstore.bundle.predicateType'] === predicateType,
    )!;
    const m = (await api.manifest(REPO, d.digest))!;
    return verifyBundle(verifier, await api.blob(REPO, (m.json.layers as Descriptor[])[0]!.digest));
  }
});

/** Files of a stand-in base (docker export, never run) and the package names recorded in status.d. */
async function baseListing(imageName: string): Promise<{ files: string[]; packages: string[] }> {
  const id = await docker('create', imageName);
  try {
    const files = (await pipeDocker(['export', id], 'tar', ['-tf', '-']))
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((f) => `/${f.replace(/\/$/, '')}`)
      .filter(
        (f) =>
          f !== '/' &&
          !/^\/(dev|proc|sys|etc\/(hosts|hostname|resolv\.conf|mtab))(\/|$)/.test(f) &&
          f !== '/.dockerenv',
      );
    const packages = files
      .filter((f) => f.startsWith('/var/lib/dpkg/status.d/'))
      .map((f) => f.slice('/var/lib/dpkg/status.d/'.length))
      .sort();
    return { files, packages };
  } finally {
    await docker('rm', id);
  }
}
