// What the SBOM needs to know about the runtime base's Node binary (its version and
// CPU architecture), read from the file without running it: the image build runs on
// the build machine's own platform, and the runtime base may be another one (arm64
// on an amd64 machine) that this machine cannot execute without emulation.
//
//   node scripts/runtime-facts.ts NODE_BINARY OUT.json
//
// The architecture is the ELF header's e_machine. The version is the one an official
// Node release build embeds in its own download URLs (process.release.headersUrl:
// ".../node-vX.Y.Z-headers.tar.gz"); a binary without them (a custom build) is run
// instead, which works when it is of the build machine's platform.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

// node:util parseArgs directly, not scripts/lib/args.ts: the image build copies this
// file alone into the stage that reads the runtime base. Any option is refused.
let args: string[] = [];
try {
  args = parseArgs({ allowPositionals: true, strict: true }).positionals;
} catch {
  /* an option: refused below with the usage */
}
const [binary, out] = args;
if (args.length !== 2 || binary === undefined || out === undefined) {
  console.error('usage: node scripts/runtime-facts.ts NODE_BINARY OUT.json');
  process.exit(2);
}

const bytes = readFileSync(binary);
if (bytes.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${binary} is not an ELF file`);
// e_machine, little-endian (both supported targets are), at offset 18 of the ELF header.
const MACHINES: Record<number, string> = { 0x3e: 'x64', 0xb7: 'arm64' };
const machine = bytes.readUInt16LE(18);
const arch = MACHINES[machine];
if (arch === undefined) throw new Error(`${binary}: unsupported ELF machine 0x${machine.toString(16)}`);

const marker = bytes.indexOf('-headers.tar.gz');
const embedded =
  marker < 0
    ? null
    : /node-(v\d+\.\d+\.\d+)$/.exec(bytes.subarray(Math.max(0, marker - 40), marker).toString('latin1'));
const version = embedded?.[1] ?? execFileSync(binary, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
writeFileSync(out, JSON.stringify({ version, arch }));
console.log(`runtime-facts: node ${version} (${arch}), read from ${embedded ? 'the binary' : 'running it'}`);
