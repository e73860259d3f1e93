// Facts about the git checkout that scripts stamp on what they build (bundle, image
// labels, provenance). Each is read when asked. Outside a checkout (the image build's
// context has no .git) or without git, each is empty, null or false.
import { execFileSync } from 'node:child_process';

function git(...args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** The full hash of HEAD, or ''. */
export const headCommit = (): string => git('rev-parse', 'HEAD');

/** The current branch (`HEAD` when detached), or ''. */
export const currentBranch = (): string => git('rev-parse', '--abbrev-ref', 'HEAD');

/** Whether tracked files differ from HEAD (untracked files do not count). */
export const workingTreeModified = (): boolean => git('status', '--porcelain', '--untracked-files=no') !== '';

/** HEAD's commit time as git writes it, ISO 8601 with the committer's offset (2026-11-27T10:31:08+01:00), or ''. */
export const commitDateWithOffset = (): string => git('show', '-s', '--format=%cI', 'HEAD');

/** HEAD's commit time in UTC to the second (2026-11-27T09:31:08Z), or null. */
export function commitDateUtc(): string | null {
  const seconds = git('show', '-s', '--format=%ct', 'HEAD');
  return seconds === '' ? null : new Date(Number(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}
