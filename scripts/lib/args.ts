// Every script reads its command line through node:util parseArgs in strict mode: an
// unknown option, a missing value or a stray argument stops the script with exit
// status 2 and names the argument, instead of being ignored.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Prints `<script>: <message>` and exits 2, the status for bad usage. */
export function usageError(script: string, message: string): never {
  console.error(`${script}: ${message}`);
  process.exit(2);
}

/** The script's command line (process.argv after the script) parsed by `config`, or exit 2. */
export function scriptArgs<T extends ParseArgsConfig>(
  script: string,
  config: T,
  args: readonly string[] = process.argv.slice(2),
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs({ ...config, args, strict: true }) as ReturnType<typeof parseArgs<T>>;
  } catch (e) {
    if (!(e instanceof Error) || !String((e as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS_')) throw e;
    usageError(script, `unknown or incomplete argument ${refusedArgument(e.message)}`);
  }
}

// parseArgs names the argument only inside its prose ("Unknown option '--x'",
// "Option '--tag <value>' argument missing", "Unexpected argument 'x'. ..."): the
// first quoted part. Should the wording change, the whole message is still shown.
function refusedArgument(message: string): string {
  const quoted = /'([^']*)'/.exec(message)?.[1];
  return quoted === undefined ? `(${message})` : quoted.replace(/ <value>$/, '');
}
