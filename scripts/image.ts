// `npm run image`: build the production image with BuildKit, filling the label
// arguments from package.json and git. `created` is the commit's time (UTC), so
// rebuilding the same commit gives the same labels.
//
//   npm run image -- [--airgap] [--tag NAME] [--environment ENV] [--record FILE]
//                    [--platform linux/amd64,linux/arm64] [-- extra docker build args]
//
// --record FILE writes what the build used (build arguments, both base images, times)
// as JSON, for the release's provenance statement.
// --airgap builds (or reuses) the local stand-in bases and builds against them.
// --platform builds for those platforms, one build each (Debian's 20.10 client builds
// one platform per build); the builder stages run on this machine's platform and come
// from the cache after the first. With several platforms each image is tagged NAME-ARCH
// (the local image store holds one platform per tag) and the record lists them all.
// The docker client comes from $DOCKER (default `docker`); it must support BuildKit.
// When $NODE_EXTRA_CA_CERTS names a file, it is passed as the build secret npm_ca.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { scriptArgs } from './lib/args.ts';
import { commitDateUtc, currentBranch, headCommit } from './lib/git.ts';

// What follows `--` goes to docker build untouched, so it is split off before parsing.
const args = process.argv.slice(2);
const dashdash = args.indexOf('--');
const passthrough = dashdash < 0 ? [] : args.slice(dashdash + 1);
const { values: opts } = scriptArgs(
  'image',
  {
    options: {
      airgap: { type: 'boolean', default: false },
      tag: { type: 'string' },
      environment: { type: 'string', default: 'production' },
      record: { type: 'string', default: '' },
      platform: { type: 'string', default: '' },
    },
  },
  dashdash < 0 ? args : args.slice(0, dashdash),
);

const docker = process.env.DOCKER ?? 'docker';
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

const commit = headCommit();
const created = commitDateUtc() ?? new Date().toISOString();
const branch = process.env.BRANCH ?? (currentBranch() || 'unknown');
const tag = opts.tag ?? `echo-server:${pkg.version}`;

const buildArgs: Record<string, string> = {
  VERSION: pkg.version,
  COMMIT_HASH: commit || 'unknown',
  CREATED_DATE: created,
  BRANCH: branch,
  ENVIRONMENT: opts.environment,
};

const platforms = opts.platform
  .split(',')
  .map((p) => p.trim())
  .filter(Boolean);
for (const p of platforms) {
  if (!/^linux\/(amd64|arm64)$/.test(p)) {
    console.error(`image: unsupported platform "${p}" (linux/amd64, linux/arm64)`);
    process.exit(2);
  }
}
const archOf = (platform: string): string => platform.split('/')[1]!;

/** Base images by architecture: the stand-ins for --airgap, else the Dockerfile's (multi-arch) defaults. */
const bases = new Map<string, Record<string, string>>();
if (opts.airgap) {
  const extra = platforms
    .map(archOf)
    .filter((a) => a !== 'amd64')
    .flatMap((a) => ['--arch', a]);
  const out = execFileSync('bash', ['scripts/airgap-bases.sh', ...extra], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, DOCKER: docker },
  });
  const lines = Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
  for (const arch of ['amd64', ...platforms.map(archOf)]) {
    const suffix = arch === 'amd64' ? '' : `_${arch.toUpperCase()}`;
    const runtime = lines[`RUNTIME_IMAGE${suffix}`];
    // The builder runs on this machine's platform whatever the target: always the native one.
    if (lines.BUILDER_IMAGE && runtime) bases.set(arch, { BUILDER_IMAGE: lines.BUILDER_IMAGE, RUNTIME_IMAGE: runtime });
  }
}

const ca = process.env.NODE_EXTRA_CA_CERTS;
const dockerfile = readFileSync('Dockerfile', 'utf8');
// The Dockerfile's own defaults apply to the bases that were not overridden.
const argDefault = (name: string): string => new RegExp(`^ARG ${name}=(\\S+)`, 'm').exec(dockerfile)?.[1] ?? '';
/** With several platforms, NAME:TAG-ARCH (NAME:latest-ARCH when NAME has no tag). */
const tagFor = (platform: string | undefined): string => {
  if (platform === undefined || platforms.length < 2) return tag;
  const named = /:[^/]+$/.test(tag) ? tag : `${tag}:latest`;
  return `${named}-${archOf(platform)}`;
};

const records: Record<string, unknown>[] = [];
for (const platform of platforms.length > 0 ? platforms : [undefined]) {
  const args = { ...buildArgs, ...(bases.get(platform === undefined ? 'amd64' : archOf(platform)) ?? {}) };
  const imageTag = tagFor(platform);
  const cmd = ['build', '--tag', imageTag];
  if (platform !== undefined) cmd.push('--platform', platform);
  for (const [k, v] of Object.entries(args)) cmd.push('--build-arg', `${k}=${v}`);
  if (ca !== undefined && ca !== '' && existsSync(ca)) cmd.push('--secret', `id=npm_ca,src=${ca}`);
  cmd.push(...passthrough, '.');

  console.error(`image: ${docker} ${cmd.join(' ')}`);
  const startedOn = new Date().toISOString();
  const result = spawnSync(docker, cmd, { stdio: 'inherit', env: { ...process.env, DOCKER_BUILDKIT: '1' } });
  if (result.status !== 0) process.exit(result.status ?? 1);
  records.push({
    tag: imageTag,
    ...(platform === undefined ? {} : { platform }),
    buildArgs: args,
    builderImage: args.BUILDER_IMAGE ?? argDefault('BUILDER_IMAGE'),
    runtimeImage: args.RUNTIME_IMAGE ?? argDefault('RUNTIME_IMAGE'),
    extraArgs: passthrough,
    startedOn,
    finishedOn: new Date().toISOString(),
  });
}
if (records.length > 1) for (const r of records) console.error(`image: ${String(r.platform)} -> ${String(r.tag)}`);

const record = opts.record;
if (record !== '')
  writeFileSync(record, JSON.stringify(records.length === 1 ? records[0] : { tag, platforms: records }, null, 2));
