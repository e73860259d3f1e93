// `npm run image`: build the production image with BuildKit, filling the label
// arguments from package.json and git. `created` is the commit's time (UTC), so
// rebuilding the same commit gives the same labels.
//
//   npm run image -- [--airgap] [--tag NAME] [--environment ENV] [--record FILE] [-- extra docker build args]
//
// --record FILE writes what the build used (build arguments, both base images, times)
// as JSON, for the release's provenance statement.
// --airgap builds (or reuses) the local stand-in bases and builds against them.
// The docker client comes from $DOCKER (default `docker`); it must support BuildKit.
// When $NODE_EXTRA_CA_CERTS names a file, it is passed as the build secret npm_ca.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const dashdash = args.indexOf('--');
const own = dashdash < 0 ? args : args.slice(0, dashdash);
const passthrough = dashdash < 0 ? [] : args.slice(dashdash + 1);
const option = (name: string, fallback: string): string => {
  const i = own.indexOf(name);
  return i >= 0 && own[i + 1] !== undefined ? own[i + 1]! : fallback;
};

const docker = process.env.DOCKER ?? 'docker';
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const git = (...a: string[]): string => {
  try {
    return execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
};

const commit = git('rev-parse', 'HEAD');
const commitSeconds = git('show', '-s', '--format=%ct', 'HEAD');
const created = commitSeconds === '' ? new Date().toISOString() : new Date(Number(commitSeconds) * 1000).toISOString().replace('.000Z', 'Z');
const branch = process.env.BRANCH ?? (git('rev-parse', '--abbrev-ref', 'HEAD') || 'unknown');
const tag = option('--tag', `echo-server:${pkg.version}`);

const buildArgs: Record<string, string> = {
  VERSION: pkg.version,
  COMMIT_HASH: commit || 'unknown',
  CREATED_DATE: created,
  BRANCH: branch,
  ENVIRONMENT: option('--environment', 'production'),
};

if (own.includes('--airgap')) {
  const out = execFileSync('bash', ['scripts/airgap-bases.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, DOCKER: docker } });
  for (const line of out.trim().split('\n')) {
    const [k, v] = line.split('=');
    if ((k === 'BUILDER_IMAGE' || k === 'RUNTIME_IMAGE') && v) buildArgs[k] = v;
  }
}

const cmd = ['build', '--tag', tag];
for (const [k, v] of Object.entries(buildArgs)) cmd.push('--build-arg', `${k}=${v}`);
const ca = process.env.NODE_EXTRA_CA_CERTS;
if (ca !== undefined && ca !== '' && existsSync(ca)) cmd.push('--secret', `id=npm_ca,src=${ca}`);
cmd.push(...passthrough, '.');

console.error(`image: ${docker} ${cmd.join(' ')}`);
const startedOn = new Date().toISOString();
const result = spawnSync(docker, cmd, { stdio: 'inherit', env: { ...process.env, DOCKER_BUILDKIT: '1' } });
const record = option('--record', '');
if (record !== '' && result.status === 0) {
  // The Dockerfile's own defaults apply to the bases that were not overridden.
  const dockerfile = readFileSync('Dockerfile', 'utf8');
  const argDefault = (name: string): string => new RegExp(`^ARG ${name}=(\\S+)`, 'm').exec(dockerfile)?.[1] ?? '';
  writeFileSync(record, JSON.stringify({
    tag,
    buildArgs,
    builderImage: buildArgs.BUILDER_IMAGE ?? argDefault('BUILDER_IMAGE'),
    runtimeImage: buildArgs.RUNTIME_IMAGE ?? argDefault('RUNTIME_IMAGE'),
    extraArgs: passthrough,
    startedOn,
    finishedOn: new Date().toISOString(),
  }, null, 2));
}
process.exit(result.status ?? 1);
