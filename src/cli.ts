// The command line, thin over the library. Everything it touches (arguments,
// environment, output streams, signals) comes in through `CliIo`, so tests run it
// in-process exactly as the binary does.
import { parseArgs as tokenize, type ParseArgsOptionsConfig } from 'node:util';
import {
  ConfigError,
  SETTINGS,
  closest,
  describeConfig,
  loadConfig,
  type Config,
  type ConfigWarning,
  type Env,
} from './config/settings.ts';
import { probe } from './healthcheck.ts';
import { fdLimitWarning } from './config/fd-limit.ts';
import { createLogger, type Logger } from './ops/logger.ts';
import {
  heapChosen,
  heapLimitMiB,
  readCgroupLimits,
  autoWorkers,
  sizeFor,
  type CgroupLimits,
} from './config/resources.ts';
import { startServer, type EchoServer, type ServerDeps } from './server.ts';
import { WORKER_ENV, joinPrimary, runPrimary, workerId } from './workers.ts';
import { BUILD_INFO } from './ops/version.ts';
import { connectionShare } from './core/connection-share.ts';
import { clientShare } from './handlers/client-share.ts';
import { callCommand } from './call.ts';

export interface CliIo {
  env: Env;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Register a handler for every signal in SIGNALS. */
  onSignal(handler: (signal: string) => void): void;
  /** Log destination for the server (standard output when absent). */
  logDestination?: NodeJS.WritableStream;
  /** Called once the server listens, with its URL (tests use it to find the port). */
  onListening?(url: string): void;
  /**
   * The real binary only: its script (for --workers, which starts more of it) and a
   * way to restart itself in place with extra Node flags (the V8 heap sized from a
   * container memory limit). In-process callers leave them out.
   */
  process?: { entry: string; nodeArgs: string[]; relaunch(nodeArgs: string[]): void };
  /** The cgroup limits; read from /sys/fs/cgroup when absent. */
  limits?: CgroupLimits;
}

/** Signals that drain and stop the server (like nginx, SIGQUIT is a graceful stop too). */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const;
/** Signals that are logged and otherwise ignored (SIGUSR1 never arrives under --disable-sigusr1). */
export const IGNORED_SIGNALS = ['SIGUSR1', 'SIGUSR2'] as const;
export const SIGNALS = [...STOP_SIGNALS, ...IGNORED_SIGNALS];

/** What a --workers worker's drain was started by when the primary asked for it (not a signal). */
const FROM_PRIMARY = 'primary';

/** Exit status: 0 success, 1 failure (unhealthy, forced stop), 2 bad usage or configuration. */
export type ExitCode = 0 | 1 | 2;

interface ParsedArgs {
  command: 'serve' | 'healthcheck';
  help: boolean;
  version: boolean;
  flags: Map<string, string>;
}

const BOOLEAN_FLAGS = new Set(SETTINGS.filter((s) => s.default === 'true' || s.default === 'false').map((s) => s.flag));
const FLAGS = SETTINGS.map((s) => s.flag);
const KNOWN_FLAGS = new Set(FLAGS);

/**
 * node:util parseArgs options, from the settings table. Every setting's value is text
 * for loadConfig; booleans are declared boolean so that `--flag` takes no value from
 * the next argument and `--no-flag` is understood (allowNegative).
 */
const OPTIONS: ParseArgsOptionsConfig = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  ...Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: BOOLEAN_FLAGS.has(s.flag) ? 'boolean' : 'string' }])),
};

const unexpected = (arg: string) => new ConfigError(`unexpected argument "${arg}" (see --help)`);

// parseArgs splits the command line into tokens (`--flag=value`, `--flag value`,
// `--no-flag`, `-h`); its strict mode is off because the rules below are ones it cannot
// express: a boolean also takes `--flag=false` and `--flag false`, a repeated flag is
// refused rather than the last one kept, and every error names the flag with the
// closest known one. Tokens are checked in command-line order: the first problem is
// the one reported.
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { command: 'serve', help: false, version: false, flags: new Map() };
  let sawCommand = false;
  const { tokens } = tokenize({
    args: [...argv],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    allowNegative: true,
    tokens: true,
  });
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === 'option-terminator') throw unexpected('--');
    if (t.kind === 'positional') {
      if (sawCommand || (t.value !== 'serve' && t.value !== 'healthcheck')) throw unexpected(t.value);
      out.command = t.value;
      sawCommand = true;
      continue;
    }
    if (!t.rawName.startsWith('--')) {
      // Short options are -h and -v alone; parseArgs would split `-hv` or `-p80` into several.
      const arg = argv[t.index]!;
      if (arg !== '-h' && arg !== '-v') throw unexpected(arg);
      out[t.name as 'help' | 'version'] = true;
      continue;
    }
    const typed = t.rawName.slice(2); // `no-identity` where allowNegative made the name `identity`
    const negated = typed !== t.name;
    if (!negated && t.value === undefined && (t.name === 'help' || t.name === 'version')) {
      out[t.name] = true;
      continue;
    }
    // `--bogus 1` is an unknown flag (parseArgs leaves the 1 positional), not a bad value.
    if (!KNOWN_FLAGS.has(t.name) || (negated && !BOOLEAN_FLAGS.has(t.name))) {
      throw new ConfigError(`unknown flag --${typed}; did you mean --${closest(typed, FLAGS)}? (see --help)`);
    }
    if (out.flags.has(t.name)) throw new ConfigError(`--${t.name} is given more than once; give each flag once`);
    let value = negated ? 'false' : t.value;
    if (value === undefined && BOOLEAN_FLAGS.has(t.name)) {
      // `--https false`: a boolean's value as the next argument, which parseArgs leaves positional.
      const next = tokens[i + 1];
      value = next?.kind === 'positional' && /^(true|false)$/i.test(next.value) ? (i++, next.value) : 'true';
    }
    if (value === undefined) throw new ConfigError(`--${t.name} needs a value`);
    out.flags.set(t.name, value);
  }
  return out;
}

export function usage(): string {
  const lines = [
    `${BUILD_INFO.name} ${BUILD_INFO.version}: an HTTP echo server that shows exactly what reaches a backend.`,
    '',
    'Usage:',
    '  echo-server [serve] [flags]     serve (the default command)',
    "  echo-server healthcheck [flags] probe the local server's liveness; exit 0 when healthy, 1 when not",
    '  echo-server call URL... [flags] outbound calls (http(s) h2c h2 grpc(s) ws(s) tcp tls udp); see call --help',
    '  echo-server --version | --help',
    '',
    'Every flag has an environment twin; a flag wins over its variable. Booleans take',
    '--flag, --flag=false or --no-flag. Durations: 500ms, 10s, 2m. Sizes: 1024, 64KiB, 10MB.',
    'Each flag may be given once. ECHO_* variables that are not settings (typos, Kubernetes',
    'service links) are ignored with a warning in the log.',
    '',
    'Flags:',
  ];
  for (const s of SETTINGS) {
    lines.push(`  --${s.flag.padEnd(22)} ${s.help}`);
    lines.push(`  ${''.padEnd(24)} env ${s.env}, default ${s.default === '' ? '(empty)' : s.default}`);
  }
  return lines.join('\n') + '\n';
}

export async function main(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  // `call` has flags of its own (a client's, not the server's settings).
  if (argv[0] === 'call') return callCommand(argv.slice(1), io);
  const read = readCommandLine(argv, io);
  if (typeof read === 'number') return read;
  const { args, warnings } = read;
  let { config } = read;
  if (args.command === 'healthcheck') {
    // The server logged the configuration warnings at start; a probe every 30 s need not repeat them.
    const result = await probe(config).catch((err: unknown) => ({ ok: false, detail: (err as Error).message }));
    (result.ok ? io.stdout : io.stderr).write(`${result.ok ? 'healthy' : 'unhealthy'}: ${result.detail}\n`);
    return result.ok ? 0 : 1;
  }

  // --- resources and workers
  const limits = io.limits ?? readCgroupLimits();
  const worker = workerId();
  const workers = worker !== null ? 1 : config.workers === 0 ? autoWorkers(limits) : config.workers;
  if (workers > 1 && io.process === undefined) {
    io.stderr.write('echo-server: --workers above 1 needs the echo-server binary (it starts more of itself)\n');
    return 2;
  }
  const auto: AutoSized = {
    inFlight: config.maxInFlight === 0,
    connections: config.maxConnections === 0,
    streams: config.h2MaxStreams === 0,
  };
  if (worker === null && workers === 1 && io.process !== undefined) {
    // Under a memory limit V8 would size its heap from the limit itself, but about
    // twice as large as a limited container can hold (259 MiB in 128 MiB): restart
    // once, in place (same PID), with a heap that fits, unless the operator chose one.
    const heap = sizeFor(limits, 1).heapMiB;
    if (heap !== null && !heapChosen(io.process.nodeArgs, io.env.NODE_OPTIONS))
      io.process.relaunch([`--max-old-space-size=${heap}`]);
  }
  const logger: Logger = createLogger({
    level: config.logLevel,
    format: config.logFormat,
    ...(io.logDestination ? { destination: io.logDestination } : {}),
  });
  if (worker === null) for (const w of warnings) logger.warn({ variable: w.variable }, w.message);
  if (workers > 1 && io.process !== undefined) {
    const proc = io.process;
    return runPrimary(config, workers, limits, {
      argv,
      logger,
      describe: describeConfig(config),
      onSignal: (h) => io.onSignal(h),
      flush: () => flush(logger),
      nodeArgs: proc.nodeArgs,
      onListening: (url) => io.onListening?.(url),
    });
  }
  config = worker === null ? sizedForOneProcess(config, limits, auto) : sizedByPrimary(config, io.env, auto);
  const deps: ServerDeps = { logger, env: io.env };
  const stopper = { stop: (_signal: string) => {} };
  let joined: ReturnType<typeof joinPrimary> | undefined;
  if (worker !== null) {
    deps.worker = {
      id: worker,
      reusePort: config.workerBalance === 'reuseport',
      // The primary's word to drain is not a second signal: after Ctrl-C in a terminal
      // the worker gets the SIGINT itself as well, and must still drain, not exit at once.
      attachMetrics: (m) => {
        joined = joinPrimary(m, () => stopper.stop(FROM_PRIMARY), logger);
      },
    };
  }
  const server = await listenOrExit(config, deps, logger, io);
  if (typeof server === 'number') return server;
  announce(server, { limits, auto, worker, logger, io, joined });
  return untilStopped(server, config, logger, io, stopper);
}

/** Which limits were left at `auto` (sized from the container) rather than chosen. */
interface AutoSized {
  inFlight: boolean;
  connections: boolean;
  streams: boolean;
}

/**
 * The command line and environment read into a config, or the exit status: --help
 * and --version answered, a bad setting reported (2; 1 for healthcheck, as Docker
 * reserves 2 of a HEALTHCHECK command).
 */
function readCommandLine(
  argv: readonly string[],
  io: CliIo,
): { args: ParsedArgs; config: Config; warnings: ConfigWarning[] } | ExitCode {
  const warnings: ConfigWarning[] = [];
  const usageError: ExitCode = argv.includes('healthcheck') ? 1 : 2;
  try {
    const args = parseArgs(argv);
    if (args.help) {
      io.stdout.write(usage());
      return 0;
    }
    if (args.version) {
      io.stdout.write(
        `${BUILD_INFO.name} ${BUILD_INFO.version}${BUILD_INFO.commit ? ` (${BUILD_INFO.commit})` : ''} node ${process.version}\n`,
      );
      return 0;
    }
    const config = loadConfig(args.flags, io.env, (w) => warnings.push(w));
    if (args.command === 'healthcheck' && config.livenessPath === '') {
      throw new ConfigError('healthcheck needs a liveness endpoint, but --liveness-path is empty');
    }
    return { args, config, warnings };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`echo-server: ${err.message}\nRun "echo-server --help" for the list of settings.\n`);
    return usageError;
  }
}

/** A single process: the limits left at `auto`, from the same container limits that sized the heap. */
function sizedForOneProcess(config: Config, limits: CgroupLimits, auto: AutoSized): Config {
  const sized = sizeFor(limits, 1);
  let c = config;
  if (auto.inFlight) c = { ...c, maxInFlight: sized.maxInFlight };
  if (auto.connections) c = { ...c, maxConnections: sized.maxConnections };
  if (auto.streams) c = { ...c, h2MaxStreams: sizeFor(limits, 1, c.maxConnections).h2MaxStreams };
  return c;
}

/** A --workers worker: its share of the limits left at `auto`, and the ports, as the primary passed them. */
function sizedByPrimary(config: Config, env: Env, auto: AutoSized): Config {
  let c = config;
  const perWorker = env[WORKER_ENV.maxInFlight];
  if (auto.inFlight && perWorker !== undefined) c = { ...c, maxInFlight: Number(perWorker) };
  const perWorkerConnections = env[WORKER_ENV.maxConnections];
  if (auto.connections && perWorkerConnections !== undefined)
    c = { ...c, maxConnections: Number(perWorkerConnections) };
  const perWorkerStreams = env[WORKER_ENV.h2MaxStreams];
  if (auto.streams && perWorkerStreams !== undefined) c = { ...c, h2MaxStreams: Number(perWorkerStreams) };
  const ports = env[WORKER_ENV.ports];
  if (ports !== undefined) {
    const [http, https] = ports.split(',').map(Number);
    c = { ...c, port: http!, httpsPort: https! };
  }
  return c;
}

/** The server listening, or the exit status when it cannot: 2 for a busy or forbidden port or a bad setting, else 1. */
async function listenOrExit(
  config: Config,
  deps: ServerDeps,
  logger: Logger,
  io: CliIo,
): Promise<EchoServer | ExitCode> {
  try {
    return await startServer(config, deps);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`echo-server: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException & { listener?: string; port?: number };
    const what =
      e.listener === undefined
        ? `${config.host} port ${config.port}`
        : `${config.host} port ${e.port} (${e.listener} listener, --${e.listener === 'https' || e.listener === 'tcp' || e.listener === 'tcp-tls' || e.listener === 'udp' ? `${e.listener}-port` : 'port'})`;
    logger.fatal({ code: e.code, listener: e.listener }, `cannot listen on ${what}: ${e.message}`);
    await flush(logger);
    return e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL' ? 2 : 1;
  }
}

/** The startup line (a worker's own, or the server's with its settings and resources), then the listening hook. */
function announce(
  server: EchoServer,
  o: {
    limits: CgroupLimits;
    auto: AutoSized;
    worker: number | null;
    logger: Logger;
    io: CliIo;
    joined: ReturnType<typeof joinPrimary> | undefined;
  },
): void {
  const { limits, auto, worker, logger, io } = o;
  const listeners = server.listener.ports.map((p) => p.url);
  const resources = {
    memoryLimitMiB: limits.memoryBytes === null ? null : Math.round(limits.memoryBytes / 2 ** 20),
    cpuQuota: limits.cpuQuota,
    maxInFlight: server.config.maxInFlight,
    maxInFlightAuto: auto.inFlight,
    maxInFlightPerClient: clientShare(server.config),
    maxConnections: server.config.maxConnections,
    maxConnectionsAuto: auto.connections,
    maxConnectionsPerClient: connectionShare(server.config) || server.config.maxConnections,
    h2MaxStreams: server.config.h2MaxStreams,
    heapLimitMiB: heapLimitMiB(),
  };
  if (worker !== null) {
    logger.info({ worker, pid: process.pid, listeners, resources }, 'worker started');
    o.joined?.listening(listeners);
    return;
  }
  logger.info(
    {
      ...BUILD_INFO,
      listeners,
      ...(server.metricsListener ? { metricsPort: server.metricsListener.port } : {}),
      tlsCertificate: server.tlsSource ?? undefined,
      resources,
      config: describeConfig(server.config),
    },
    'echo-server started',
  );
  const fdWarning = fdLimitWarning(server.config.maxConnections);
  if (fdWarning !== null) logger.warn({ setting: '--max-connections' }, fdWarning);
  io.onListening?.(server.url);
}

/**
 * Serves until a stop signal: then drains (0 once drained or cut at the drain
 * timeout, 1 if the shutdown failed); a second signal exits at once (1).
 */
function untilStopped(
  server: EchoServer,
  config: Config,
  logger: Logger,
  io: CliIo,
  stopper: { stop: (signal: string) => void },
): Promise<ExitCode> {
  return new Promise<ExitCode>((resolve) => {
    let signals = 0;
    let draining = false;
    io.onSignal(
      (stopper.stop = (signal) => {
        if ((IGNORED_SIGNALS as readonly string[]).includes(signal)) {
          logger.warn({ signal }, 'signal ignored (SIGTERM, SIGINT, SIGHUP or SIGQUIT stop the server)');
          return;
        }
        if (signal !== FROM_PRIMARY) signals++;
        if (signals > 1) {
          logger.warn({ signal }, 'second signal: exiting now');
          void flush(logger).then(() => resolve(1));
          return;
        }
        if (draining) return;
        draining = true;
        logger.info(
          {
            signal,
            inFlight: server.app.inFlight,
            shutdownDelayMs: config.shutdownDelayMs,
            drainTimeoutMs: config.drainTimeoutMs,
          },
          'shutting down: draining',
        );
        server.shutdown().then(
          (drained) => {
            if (drained) logger.info('shutdown complete');
            else logger.warn({ inFlight: server.app.inFlight }, 'drain timeout: closed remaining connections');
            return flush(logger).then(() => resolve(0));
          },
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            return flush(logger).then(() => resolve(1));
          },
        );
      }),
    );
  });
}

/** Waits (briefly) until buffered log lines are written, so the last lines survive exit. */
function flush(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    try {
      logger.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer); // an injected stream may not support flushing
      resolve();
    }
  });
}
