// The environment variables an operator chose to show in the echo (--echo-env). None
// by default: an environment holds secrets, and the echo is shown to any client.
import type { Env } from '../config/settings.ts';
import { clientKeyed } from './model.ts';

/** Only variables matching the operator's allowlist (`*` wildcards), read once at start-up. */
export function allowedEnv(env: Env, patterns: readonly string[]): Record<string, string> | null {
  if (patterns.length === 0) return null;
  const regexes = patterns.map((p) => new RegExp(`^${p.replace(/\*/g, '.*')}$`));
  const out = clientKeyed<string>();
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value !== undefined && regexes.some((r) => r.test(name))) out[name] = value;
  }
  return out;
}
