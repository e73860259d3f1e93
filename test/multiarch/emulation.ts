// QEMU user-mode emulation of arm64 for the multi-arch tests: Debian's qemu-user-static
// registers an aarch64 entry in binfmt_misc with the F flag (the kernel keeps the
// interpreter open, so it also works inside containers, whose filesystem has no QEMU).
// The set-up mounts binfmt_misc and enables the entry when they are missing; whether
// the kernel accepts that is outside the project's control, so a refusal is reported,
// not hidden.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const BINFMT = '/proc/sys/fs/binfmt_misc';
export const ENTRY = `${BINFMT}/qemu-aarch64`;

export interface Emulation {
  /** arm64 binaries can run here */
  ok: boolean;
  /** qemu-user-static itself is missing (CI installs it, so there it is a failure) */
  notInstalled: boolean;
  reason: string;
}

const installed = (): boolean =>
  existsSync('/usr/libexec/qemu-binfmt/aarch64-binfmt-P') ||
  spawnSync('sh', ['-c', 'command -v qemu-aarch64-static'], { stdio: 'ignore' }).status === 0;

export function setUpArm64Emulation(): Emulation {
  if (!installed())
    return {
      ok: false,
      notInstalled: true,
      reason: 'qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)',
    };
  if (!existsSync(`${BINFMT}/status`)) {
    const m = spawnSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT], { encoding: 'utf8' });
    if (m.status !== 0)
      return { ok: false, notInstalled: false, reason: `the kernel refused to mount binfmt_misc: ${m.stderr.trim()}` };
  }
  if (!existsSync(ENTRY)) spawnSync('update-binfmts', ['--enable', 'qemu-aarch64'], { stdio: 'ignore' });
  if (!existsSync(ENTRY))
    return { ok: false, notInstalled: false, reason: 'the kernel refused to register qemu-aarch64 in binfmt_misc' };
  const entry = readFileSync(ENTRY, 'utf8');
  if (!/^enabled$/m.test(entry)) setEnabled(true);
  if (!/^enabled$/m.test(readFileSync(ENTRY, 'utf8')))
    return { ok: false, notInstalled: false, reason: `${ENTRY} stays disabled` };
  if (!/^flags: .*F/m.test(entry))
    return { ok: false, notInstalled: false, reason: `${ENTRY} lacks the F flag, so containers cannot use it` };
  return { ok: true, notInstalled: false, reason: '' };
}

/** Turns the arm64 entry off or on (to prove that a build runs no arm64 code). */
export function setEnabled(on: boolean): void {
  writeFileSync(ENTRY, on ? '1' : '0');
}

export const enabled = (): boolean => existsSync(ENTRY) && /^enabled$/m.test(readFileSync(ENTRY, 'utf8'));

/** The ELF machine of a binary's first bytes: 'x86-64', 'aarch64' or the number. */
export function elfMachine(head: Buffer): string {
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  const machine = head.readUInt16LE(18);
  return machine === 0x3e ? 'x86-64' : machine === 0xb7 ? 'aarch64' : `0x${machine.toString(16)}`;
}
