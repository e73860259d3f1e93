// The bundle's esbuild target comes from package.json's engines.node, so the syntax the
// bundle may use and the Node versions the package claims to run on cannot drift apart.

/**
 * The esbuild target for an engines.node range: its lowest version, ">=24.9" -> "node24.9".
 * Only ranges with one lower bound are taken (>=, ^, ~ or a bare version); anything
 * else (an upper bound, `||`, `*`) is refused rather than guessed.
 */
export function esbuildTarget(range: string): string {
  const m = /^\s*(?:>=|\^|~)?\s*v?(\d+(?:\.\d+){0,2})\s*$/.exec(range);
  if (m === null) throw new Error(`engines.node "${range}" is not a single lowest version such as ">=24.9"`);
  return `node${m[1]!}`;
}
