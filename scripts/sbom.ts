// The image's software bill of materials, CycloneDX 1.6 JSON, built with the CycloneDX
// library during the image build (Dockerfile, `build` stage) from what really goes in:
//  - npm packages: exactly the packages whose files esbuild bundled (its metafile
//    inputs), with version, licence and hash from package-lock.json. Dev dependencies
//    are never bundled, so they never appear;
//  - Debian packages of the runtime base: one dpkg status file per package under
//    /var/lib/dpkg/status.d/ (how distroless records them; the air-gapped stand-in base
//    does the same), licences from the machine-readable /usr/share/doc/<pkg>/copyright;
//  - the Node.js runtime of the base (its version as that binary reports it).
// No clock is read: the timestamp is the commit time, the serial number is derived from
// the content, so the same commit gives the same file (the layer stays reproducible).
//
//   node scripts/sbom.ts --metafile F --lock package-lock.json --package package.json
//        --base DIR (status.d/, doc/, os-release, node.json) --created ISO --commit SHA --out F
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Enums, Models, Serialize, Spec, SPDX, Validation } from '@cyclonedx/cyclonedx-library';
import { PackageURL } from 'packageurl-js';
import { scriptArgs, usageError } from './lib/args.ts';

// Every option is required.
const OPTIONS = {
  metafile: { type: 'string' },
  lock: { type: 'string' },
  package: { type: 'string' },
  base: { type: 'string' },
  created: { type: 'string' },
  commit: { type: 'string' },
  out: { type: 'string' },
} as const;
const { values } = scriptArgs('sbom', { options: OPTIONS });
const opt = (name: keyof typeof OPTIONS): string => values[name] ?? usageError('sbom', `missing --${name}`);
for (const name of Object.keys(OPTIONS) as (keyof typeof OPTIONS)[]) opt(name);

interface LockEntry {
  name?: string;
  version?: string;
  license?: string;
  integrity?: string;
  resolved?: string;
}
const lock = JSON.parse(readFileSync(opt('lock'), 'utf8')) as { packages: Record<string, LockEntry> };
const pkg = JSON.parse(readFileSync(opt('package'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
  description: string;
  repository?: { url: string };
};
const meta = JSON.parse(readFileSync(opt('metafile'), 'utf8')) as { inputs: Record<string, unknown> };
const base = opt('base');

function license(text: string | undefined): Models.License[] {
  if (text === undefined || text.trim() === '') return [];
  const id = SPDX.fixupSpdxId(text.trim());
  if (id !== undefined) return [new Models.SpdxLicense(id)];
  // npm allows SPDX expressions such as "(MIT OR Apache-2.0)"; Debian uses its own short names.
  if (/\b(OR|AND|WITH)\b/.test(text)) return [new Models.LicenseExpression(text.trim())];
  return [new Models.NamedLicense(text.trim())];
}

// --- npm packages that are inside the bundle
const npmDirs = new Set<string>();
for (const input of Object.keys(meta.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) npmDirs.add(m[1]!);
}
const npm: Models.Component[] = [];
for (const dir of [...npmDirs].sort()) {
  const entry = lock.packages[dir];
  if (!entry?.version) throw new Error(`sbom: ${dir} was bundled but is not in package-lock.json`);
  const full = entry.name ?? dir.slice(dir.lastIndexOf('node_modules/') + 'node_modules/'.length);
  const [group, name] = full.startsWith('@') ? (full.split('/') as [string, string]) : [undefined, full];
  const c = new Models.Component(Enums.ComponentType.Library, name, {
    group,
    version: entry.version,
    bomRef: `npm:${full}@${entry.version}`,
    purl: new PackageURL('npm', group, name, entry.version, undefined, undefined).toString(),
  });
  for (const l of license(entry.license)) c.licenses.add(l);
  const sri = /^sha512-(.+)$/.exec(entry.integrity ?? '');
  if (sri) c.hashes.set(Enums.HashAlgorithm['SHA-512'], Buffer.from(sri[1]!, 'base64').toString('hex'));
  if (entry.resolved)
    c.externalReferences.add(new Models.ExternalReference(entry.resolved, Enums.ExternalReferenceType.Distribution));
  npm.push(c);
}

// --- Debian packages of the runtime base
const osRelease = Object.fromEntries(
  readFileSync(join(base, 'os-release'), 'utf8')
    .split('\n')
    .map((l) => /^([A-Z_]+)="?([^"]*)"?$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => [m[1]!, m[2]!]),
);
const distro = `${osRelease.ID ?? 'debian'}-${osRelease.VERSION_ID ?? 'unknown'}`;

/** The licence of the `Files: *` paragraph of a machine-readable (DEP-5) copyright file. */
function debianLicense(name: string): string | undefined {
  const file = join(base, 'doc', name, 'copyright');
  if (!existsSync(file)) return undefined;
  const text = readFileSync(file, 'utf8');
  if (!/^Format:/m.test(text.split('\n\n')[0] ?? '')) return undefined;
  for (const para of text.split(/\n\s*\n/)) {
    if (/^Files:\s*\*\s*$/m.test(para)) return /^License:\s*(.+)$/m.exec(para)?.[1]?.trim();
  }
  return undefined;
}

const deb: Models.Component[] = [];
const statusDir = join(base, 'status.d');
// distroless also keeps <package>.md5sums files there; every other file is one package.
for (const file of readdirSync(statusDir)
  .filter((f) => !f.endsWith('.md5sums'))
  .sort()) {
  const fields = Object.fromEntries(
    readFileSync(join(statusDir, file), 'utf8')
      .split('\n')
      .map((l) => /^([A-Za-z-]+):\s*(.*)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const name = fields.Package ?? file;
  const version = fields.Version ?? '';
  const qualifiers: Record<string, string> = { arch: fields.Architecture ?? 'amd64', distro };
  const source = /^(\S+)/.exec(fields.Source ?? '')?.[1];
  if (source && source !== name) qualifiers.upstream = source;
  const c = new Models.Component(Enums.ComponentType.Library, name, {
    version,
    bomRef: `deb:${name}@${version}`,
    purl: new PackageURL('deb', osRelease.ID ?? 'debian', name, version, qualifiers, undefined).toString(),
  });
  for (const l of license(debianLicense(name))) c.licenses.add(l);
  deb.push(c);
}
if (deb.length === 0) throw new Error(`sbom: no package status files in ${statusDir}`);

// --- the operating system and the Node.js runtime
const os = new Models.Component(Enums.ComponentType.OperatingSystem, osRelease.ID ?? 'debian', {
  version: osRelease.VERSION_ID,
  bomRef: `os:${distro}`,
});
// arch: the binary's own (scripts/runtime-facts.ts); x64 when an older record lacks it.
const nodeInfo = JSON.parse(readFileSync(join(base, 'node.json'), 'utf8')) as { version: string; arch?: string };
const nodeVersion = nodeInfo.version.replace(/^v/, '');
const node = new Models.Component(Enums.ComponentType.Platform, 'node', {
  version: nodeVersion,
  bomRef: `node:${nodeVersion}`,
  purl: new PackageURL(
    'generic',
    undefined,
    'node',
    nodeVersion,
    {
      download_url: `https://nodejs.org/dist/v${nodeVersion}/node-v${nodeVersion}-linux-${nodeInfo.arch ?? 'x64'}.tar.xz`,
    },
    undefined,
  ).toString(),
  description: 'Node.js runtime at /nodejs/bin/node',
});
node.licenses.add(new Models.SpdxLicense('MIT'));

// --- the application and the document
const app = new Models.Component(Enums.ComponentType.Application, pkg.name, {
  version: pkg.version,
  bomRef: `app:${pkg.name}@${pkg.version}`,
  description: pkg.description,
});
app.licenses.add(new Models.SpdxLicense(pkg.license));
app.properties.add(new Models.Property('org.opencontainers.image.revision', opt('commit')));
if (pkg.repository)
  app.externalReferences.add(
    new Models.ExternalReference(pkg.repository.url.replace(/^git\+/, ''), Enums.ExternalReferenceType.VCS),
  );

const bom = new Models.Bom();
bom.metadata.timestamp = new Date(opt('created'));
bom.metadata.component = app;
for (const c of [...npm, ...deb, os, node]) bom.components.add(c);
for (const c of npm) app.dependencies.add(c.bomRef);
app.dependencies.add(node.bomRef);
for (const c of deb) node.dependencies.add(c.bomRef);

const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
const draft = serializer.serialize(bom, { sortLists: true });
const h = createHash('sha256').update(draft).digest('hex');
bom.serialNumber = `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
const json = serializer.serialize(bom, { sortLists: true, space: 2 });

const invalid: unknown = await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(json);
if (invalid !== null) {
  console.error(`sbom: the document does not validate against the CycloneDX 1.6 schema: ${JSON.stringify(invalid)}`);
  process.exit(1);
}
writeFileSync(opt('out'), json + '\n');
console.log(`sbom: ${npm.length} npm packages, ${deb.length} Debian packages, node ${nodeVersion} -> ${opt('out')}`);
