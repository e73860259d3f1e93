// The operator's default controls (--default-controls 'echo_status=503:1,200:9&echo_delay=20ms'):
// applied to every echo request that does not set them itself, for fronts and
// clients that cannot add a query parameter or a header. Read once at start: a bad
// one stops the server there (exit 2) rather than failing every request.
import { ConfigError, type Config } from '../config/settings.ts';
import { ControlError, controlInput, parseControls, type ControlInput } from '../controls/read.ts';
import type { Controls } from '../controls/table.ts';

export interface DefaultControls {
  /** The defaults' raw values, merged under a request's own. */
  readonly input: ControlInput;
  /** The defaults parsed, for a request that sets no control itself (shared: never changed). */
  readonly controls: Controls;
}

/** The setting read against the controls table; null when empty. Throws ConfigError. */
export function readDefaultControls(config: Config): DefaultControls | null {
  const text = config.defaultControls;
  if (text === '') return null;
  const input = controlInput(`?${text}`, 0, null, true);
  const stray = [...new URLSearchParams(text).keys()].find((k) => !k.startsWith('echo_'));
  if (input === null || stray !== undefined)
    throw new ConfigError(
      `--default-controls: "${stray ?? text}" is not an echo_ control (use echo_status=503&echo_delay=20ms)`,
    );
  if (input.has('health'))
    throw new ConfigError("--default-controls: echo_health sets the server's state, it cannot be a default");
  try {
    return { input, controls: Object.freeze(parseControls(input, config)) };
  } catch (err) {
    if (err instanceof ControlError) throw new ConfigError(`--default-controls: ${err.message}`);
    throw err;
  }
}

/** A request's control input with the defaults under it: the request's own win. */
export function withDefaults(input: ControlInput | null, defaults: DefaultControls): ControlInput {
  if (input === null) return defaults.input;
  for (const [name, entry] of defaults.input) if (!input.has(name)) input.set(name, entry);
  return input;
}
