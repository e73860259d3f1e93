// All settings in one table: flag, environment twin, default, bounds and help.
// Defaults are written once, as text, and go through the same parser as user input,
// so `--help`, the README test and the running server can never disagree.
import { isIP } from 'node:net';
import { NetworkSet } from '../util/addresses.ts';
import { parseAllowList, type AllowEntry } from '../util/allowlist.ts';
import { ParseError, clip, parseBoolean, parseDuration, parseInteger, parseList, parseSize } from '../util/parse.ts';

/** The forwarding headers --client-ip-header may name; echo/client-ip.ts reads each. */
/** The HTTP/2 error codes a sick replica's reset may carry (the fault control knows the same names). */
const SICK_RESET_CODES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'ENHANCE_YOUR_CALM',
];

function parseSickAnswer(text: string): string {
  const t = text.trim();
  if (/^5\d\d$/.test(t) || t === 'reset' || t === 'close') return t;
  if (t.startsWith('reset:') && SICK_RESET_CODES.includes(t.slice(6).toUpperCase()))
    return `reset:${t.slice(6).toUpperCase()}`;
  throw new ParseError(`"${clip(t)}" is not a 5xx status, reset, reset:CODE (${SICK_RESET_CODES.join(', ')}) or close`);
}

export const CLIENT_IP_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const;
/** The forwarding header the trusted proxy maintains (--client-ip-header). */
export type ClientIpHeader = (typeof CLIENT_IP_HEADERS)[number];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const TLS_CLIENT_AUTH = ['none', 'request', 'require'] as const;
export type TlsClientAuth = (typeof TLS_CLIENT_AUTH)[number];
export const PROXY_PROTOCOL_LISTENERS = ['http', 'https', 'tcp'] as const;
export type ProxyProtocolListener = (typeof PROXY_PROTOCOL_LISTENERS)[number];
export const WORKER_BALANCE = ['primary', 'reuseport'] as const;
export type WorkerBalance = (typeof WORKER_BALANCE)[number];
export const LOG_FORMATS = ['json', 'text'] as const;
export const UDP_MODES = ['envelope', 'echo'] as const;
export type UdpMode = (typeof UDP_MODES)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  port: number;
  host: string;
  maxBodySize: number;
  maxEchoBody: number;
  maxHeaderSize: number;
  maxHeaderCount: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  /** 0 until resolved: `auto` (10,000, or fewer under a container memory limit, see resources.ts). */
  maxConnections: number;
  /** 0 = `auto`: a tenth of --max-connections, at least 10 (see core/connection-share.ts). */
  maxConnectionsPerClient: number;
  /** 0 until resolved: `auto` (sized from the container's memory limit at start-up, see resources.ts). */
  maxInFlight: number;
  /** 0 = `auto`: a tenth of --max-in-flight, at least 10 (see http/client-share.ts clientShare). */
  maxInFlightPerClient: number;
  /** Whether /readyz stays 200 while the in-flight budget is full. */
  readyWhenSaturated: boolean;
  /** 0 until resolved: `auto` (100, or fewer under a container memory limit, see resources.ts). */
  h2MaxStreams: number;
  /** Operations requests (health, metrics, version) handled at once; they are not counted against maxInFlight. */
  maxOpsInFlight: number;
  drainTimeoutMs: number;
  drainIdleGraceMs: number;
  shutdownDelayMs: number;
  trustedProxies: NetworkSet;
  clientIpHeader: ClientIpHeader;
  allowedOrigins: string[];
  logLevel: LogLevel;
  logFormat: LogFormat;
  accessLog: boolean;
  logOpsRequests: boolean;
  controls: boolean;
  maxDelayMs: number;
  maxGeneratedSize: number;
  maxResponseHeaders: number;
  healthControl: boolean;
  failFirstKeys: number;
  /** Controls for requests that do not set them, as a query string (checked against the table at start). */
  defaultControls: string;
  /** A 5xx status, or a fault (`reset`, `reset:CODE`, `close`): what a sick replica answers. */
  sickAnswer: string;
  failFirstTtlMs: number;
  identity: boolean;
  metrics: boolean;
  echoEnv: string[];
  livenessPath: string;
  readinessPath: string;
  metricsPath: string;
  versionPath: string;
  healthcheckTimeoutMs: number;
  h2c: boolean;
  https: boolean;
  httpsPort: number;
  tlsCert: string;
  tlsKey: string;
  tlsClientAuth: TlsClientAuth;
  tlsClientCa: string;
  proxyProtocol: ProxyProtocolListener[];
  websocket: boolean;
  wsMaxMessage: number;
  wsMaxRate: number;
  wsIdleTimeoutMs: number;
  sse: boolean;
  sseIntervalMs: number;
  sseCount: number;
  /** `auto`: echoes without the compress control are compressed as Accept-Encoding prefers. */
  compress: 'off' | 'auto';
  /** Serve gRPC (content type application/grpc) on the HTTP/2 path of every HTTP port. */
  grpc: boolean;
  // --- workers and metrics listener
  /** Worker processes; 0 = `auto` (the CPUs this container may use), resolved at start-up. */
  workers: number;
  /** Port of a separate metrics listener; 0 = /metrics is served on the HTTP port. */
  metricsPort: number;
  /** How connections reach workers: the primary hands them out, or the kernel (SO_REUSEPORT). */
  workerBalance: WorkerBalance;
  // --- the L4 echo
  /** Port of the raw TCP echo; null: off. */
  tcpPort: number | null;
  /** Whether a TCP connection begins with a JSON line naming it. */
  tcpBanner: boolean;
  /** Bytes one TCP connection may send before it is closed (0 = no cap). */
  tcpMaxBytes: number;
  /** Bytes per second one TCP echo connection is echoed at; 0 = as fast as the peer takes them. */
  tcpMaxRate: number;
  /** Port of the TCP echo over TLS; null: off. */
  tcpTlsPort: number | null;
  /** Port of the UDP echo; null: off. */
  udpPort: number | null;
  udpMode: UdpMode;
  /** Datagrams per second one source address may have answered. */
  udpRatePerSource: number;
  /** Datagrams per second answered in all. */
  udpMaxPps: number;
  /** What GET /forward may call (CIDRs, names, with :port); empty: /forward is echoed like any path. */
  forwardAllow: AllowEntry[];
  forwardMaxCount: number;
  forwardMaxQps: number;
  forwardMaxConcurrency: number;
  forwardTimeoutMs: number;
  forwardMaxResponse: number;
}

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  flag: string;
  env: string;
  default: string;
  help: string;
  parse(text: string): Config[K];
}

type AnySetting = { [K in keyof Config]: Setting<K> }[keyof Config];

const HOUR = 3_600_000;
const GIB = 1024 ** 3;

function oneOf<T extends string>(allowed: readonly T[]) {
  return (text: string): T => {
    const s = text.trim().toLowerCase() as T;
    if (!allowed.includes(s)) throw new ParseError(`"${clip(text)}" is not one of ${allowed.join(', ')}`);
    return s;
  };
}

/** `auto` (stored as 0, resolved at start-up) or what `parse` accepts. */
function autoOr(parse: (text: string) => number) {
  return (text: string): number => (text.trim().toLowerCase() === 'auto' ? 0 : parse(text));
}

/** An endpoint path: absolute, no query, or empty to turn the endpoint off. */
function endpointPath(text: string): string {
  const s = text.trim();
  if (s === '') return '';
  if (!s.startsWith('/') || /[?#\s]/.test(s))
    throw new ParseError(`"${clip(text)}" must be an absolute path such as /livez, or empty to disable`);
  return s;
}

function proxyListeners(text: string): ProxyProtocolListener[] {
  const list = parseList(text.toLowerCase());
  for (const l of list) {
    if (!(PROXY_PROTOCOL_LISTENERS as readonly string[]).includes(l))
      throw new ParseError(`"${clip(l)}" is not one of ${PROXY_PROTOCOL_LISTENERS.join(', ')}`);
  }
  return list as ProxyProtocolListener[];
}

/** A port, or empty for off (null). */
function optionalPort(text: string): number | null {
  return text.trim() === '' ? null : parseInteger(text, 0, 65535);
}

function bindAddress(text: string): string {
  const s = text.trim();
  if (s !== 'localhost' && isIP(s) === 0)
    throw new ParseError(`"${clip(text)}" is not an IP address (use :: for all, dual-stack)`);
  return s;
}

/** `*` alone, or exact origins: scheme://host[:port], as browsers send them. */
function originList(text: string): string[] {
  const list = parseList(text);
  if (list.length === 1 && list[0] === '*') return list;
  return list.map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new ParseError(`"${clip(o)}" is not an origin such as https://app.example (or * alone)`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== o.toLowerCase().replace(/\/$/, '')) {
      throw new ParseError(`"${clip(o)}" is not an origin such as https://app.example (or * alone)`);
    }
    return u.origin;
  });
}

// A literal name, or a literal prefix with one trailing `*`: nothing that could
// match more than its author can read off it (`**`, `*_*` or `*A*` match secrets too).
const ENV_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

function envPatterns(text: string): string[] {
  const list = parseList(text);
  for (const p of list) {
    if (p === '*')
      throw new ParseError('"*" would echo every variable, secrets included; list names or prefixes such as APP_*');
    if (!ENV_PATTERN.test(p))
      throw new ParseError(
        `"${clip(p)}" is not a variable name or a prefix with one trailing * (such as HOSTNAME or APP_*)`,
      );
  }
  return list;
}

export const SETTINGS: readonly AnySetting[] = [
  {
    key: 'port',
    flag: 'port',
    env: 'ECHO_PORT',
    default: '8080',
    help: 'TCP port of the HTTP listener (0 picks a free one)',
    parse: (t) => parseInteger(t, 0, 65535),
  },
  {
    key: 'host',
    flag: 'host',
    env: 'ECHO_HOST',
    default: '::',
    help: 'bind address; :: listens on IPv4 and IPv6',
    parse: bindAddress,
  },
  {
    key: 'maxBodySize',
    flag: 'max-body-size',
    env: 'ECHO_MAX_BODY_SIZE',
    default: '10MiB',
    help: 'largest request body accepted, on every path and protocol (413 above; 0 = no body at all)',
    parse: (t) => parseSize(t, GIB),
  },
  {
    key: 'maxEchoBody',
    flag: 'max-echo-body',
    env: 'ECHO_MAX_ECHO_BODY',
    default: '64KiB',
    help: 'how much of the body is echoed; the rest is counted, not kept (0 = count only)',
    parse: (t) => parseSize(t, 64 * 1024 ** 2),
  },
  {
    key: 'maxHeaderSize',
    flag: 'max-header-size',
    env: 'ECHO_MAX_HEADER_SIZE',
    default: '64KiB',
    help: 'largest request head, request line and headers, on every protocol (431 above; at least 1KiB)',
    parse: (t) => parseSize(t, 1024 ** 2, 1024),
  },
  {
    key: 'maxHeaderCount',
    flag: 'max-header-count',
    env: 'ECHO_MAX_HEADER_COUNT',
    default: '200',
    help: 'most header fields in a request, on every protocol (431 above; node:http refuses more than 1000 itself)',
    parse: (t) => parseInteger(t, 1, 1000),
  },
  {
    key: 'headersTimeoutMs',
    flag: 'headers-timeout',
    env: 'ECHO_HEADERS_TIMEOUT',
    default: '10s',
    help: 'time from connect to a complete first request head: PROXY header, TLS handshake and headers together (408 or close after)',
    parse: (t) => parseDuration(t, HOUR, 1),
  },
  {
    key: 'requestTimeoutMs',
    flag: 'request-timeout',
    env: 'ECHO_REQUEST_TIMEOUT',
    default: '60s',
    help: 'time allowed to receive the whole request (408 after)',
    parse: (t) => parseDuration(t, HOUR, 1),
  },
  {
    key: 'keepAliveTimeoutMs',
    flag: 'keep-alive-timeout',
    env: 'ECHO_KEEP_ALIVE_TIMEOUT',
    default: '5s',
    help: 'idle time before a keep-alive connection is closed; HTTP/1.1 advertises it (Keep-Alive: timeout=) and closes about 1 s later, so a request sent right at the deadline does not meet a closing socket',
    parse: (t) => parseDuration(t, HOUR, 1),
  },
  {
    key: 'idleTimeoutMs',
    flag: 'idle-timeout',
    env: 'ECHO_IDLE_TIMEOUT',
    default: '2m',
    help: 'a connection with no traffic either way for this long is closed (0 = never)',
    parse: (t) => parseDuration(t, HOUR),
  },
  {
    key: 'maxConnections',
    flag: 'max-connections',
    env: 'ECHO_MAX_CONNECTIONS',
    default: 'auto',
    help: 'open connections (HTTP/2 sessions included) allowed at once; more are refused; auto: 10000, less under a container memory limit',
    parse: autoOr((t) => parseInteger(t, 1, 1_000_000)),
  },
  {
    key: 'maxInFlight',
    flag: 'max-in-flight',
    env: 'ECHO_MAX_IN_FLIGHT',
    default: 'auto',
    help: 'requests, streams and WebSockets handled at once, all protocols together (503 or REFUSED_STREAM above); auto: 1000, less under a container memory limit',
    parse: autoOr((t) => parseInteger(t, 1, 1_000_000)),
  },
  {
    key: 'maxConnectionsPerClient',
    flag: 'max-connections-per-client',
    env: 'ECHO_MAX_CONNECTIONS_PER_CLIENT',
    default: 'auto',
    help: "how many of the --max-connections slots one client may hold (on every port: the TCP peer, the PROXY header's source where the port takes one; IPv6 by /64; a peer in --trusted-proxies is not held to it); more are closed at once; auto: a tenth, at least 10; --max-connections or more: no share",
    parse: autoOr((t) => parseInteger(t, 1, 1_000_000)),
  },
  {
    key: 'maxInFlightPerClient',
    flag: 'max-in-flight-per-client',
    env: 'ECHO_MAX_IN_FLIGHT_PER_CLIENT',
    default: 'auto',
    help: 'how many of the --max-in-flight slots one client may hold (the client the echo names: behind a trusted proxy, by PROXY header, else the peer; IPv6 by /64); 503 or REFUSED_STREAM above; auto: a tenth, at least 10; --max-in-flight or more: no share',
    parse: autoOr((t) => parseInteger(t, 1, 1_000_000)),
  },
  {
    key: 'readyWhenSaturated',
    flag: 'ready-when-saturated',
    env: 'ECHO_READY_WHEN_SATURATED',
    default: 'true',
    help: 'whether readiness stays 200 while --max-in-flight is full; false answers 503 then, so balancers send elsewhere',
    parse: parseBoolean,
  },
  {
    key: 'maxOpsInFlight',
    flag: 'max-ops-in-flight',
    env: 'ECHO_MAX_OPS_IN_FLIGHT',
    default: '64',
    help: 'health, metrics and version requests handled at once, apart from --max-in-flight (503 or REFUSED_STREAM above)',
    parse: (t) => parseInteger(t, 1, 10_000),
  },
  {
    key: 'h2MaxStreams',
    flag: 'h2-max-streams',
    env: 'ECHO_H2_MAX_STREAMS',
    default: 'auto',
    help: 'streams one HTTP/2 session may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); auto: 100, fewer under a container memory limit',
    parse: autoOr((t) => parseInteger(t, 1, 1000)),
  },
  {
    key: 'drainTimeoutMs',
    flag: 'drain-timeout',
    env: 'ECHO_DRAIN_TIMEOUT',
    default: '10s',
    help: 'on SIGTERM, how long in-flight requests may take to finish (0 = close them at once)',
    parse: (t) => parseDuration(t, HOUR),
  },
  {
    key: 'drainIdleGraceMs',
    flag: 'drain-idle-grace',
    env: 'ECHO_DRAIN_IDLE_GRACE',
    default: '1s',
    help: 'on SIGTERM, how long a keep-alive connection may stay idle before it is closed; a request already sent is answered with Connection: close (0 = close idle ones once what has arrived is read)',
    parse: (t) => parseDuration(t, 60_000),
  },
  {
    key: 'shutdownDelayMs',
    flag: 'shutdown-delay',
    env: 'ECHO_SHUTDOWN_DELAY',
    default: '0s',
    help: 'on SIGTERM, keep accepting this long with readiness failed, so load balancers deregister first (0 = none)',
    parse: (t) => parseDuration(t, HOUR),
  },
  {
    key: 'trustedProxies',
    flag: 'trusted-proxies',
    env: 'ECHO_TRUSTED_PROXIES',
    default: '',
    help: 'CIDRs (or loopback, private, cgnat, linklocal) whose forwarding headers are believed',
    parse: (t) => new NetworkSet(parseList(t)),
  },
  {
    key: 'clientIpHeader',
    flag: 'client-ip-header',
    env: 'ECHO_CLIENT_IP_HEADER',
    default: 'x-forwarded-for',
    help: `the one forwarding header a trusted proxy maintains: ${CLIENT_IP_HEADERS.join(', ')}; others are shown, never believed`,
    parse: oneOf(CLIENT_IP_HEADERS),
  },
  {
    key: 'allowedOrigins',
    flag: 'allowed-origins',
    env: 'ECHO_ALLOWED_ORIGINS',
    default: '',
    help: "browser origins (https://app.example) allowed to open WebSockets and event streams; requests with no Origin or this server's own are always allowed; * allows all",
    parse: originList,
  },
  {
    key: 'logLevel',
    flag: 'log-level',
    env: 'ECHO_LOG_LEVEL',
    default: 'info',
    help: `log level: ${LOG_LEVELS.join(', ')}`,
    parse: oneOf(LOG_LEVELS),
  },
  {
    key: 'logFormat',
    flag: 'log-format',
    env: 'ECHO_LOG_FORMAT',
    default: 'json',
    help: 'log format: json (one object per line) or text',
    parse: oneOf(LOG_FORMATS),
  },
  {
    key: 'accessLog',
    flag: 'access-log',
    env: 'ECHO_ACCESS_LOG',
    default: 'true',
    help: 'log one line per request',
    parse: parseBoolean,
  },
  {
    key: 'logOpsRequests',
    flag: 'log-ops-requests',
    env: 'ECHO_LOG_OPS_REQUESTS',
    default: 'false',
    help: 'also log requests to the health, metrics and version endpoints',
    parse: parseBoolean,
  },
  {
    key: 'controls',
    flag: 'controls',
    env: 'ECHO_CONTROLS',
    default: 'true',
    help: 'honour the echo_* response controls',
    parse: parseBoolean,
  },
  {
    key: 'maxDelayMs',
    flag: 'max-delay',
    env: 'ECHO_MAX_DELAY',
    default: '30s',
    help: 'longest delay the delay control may ask for (0 = no delays)',
    parse: (t) => parseDuration(t, HOUR),
  },
  {
    key: 'maxGeneratedSize',
    flag: 'max-generated-size',
    env: 'ECHO_MAX_GENERATED_SIZE',
    default: '100MiB',
    help: 'largest body the size control may generate (0 = empty bodies only)',
    parse: (t) => parseSize(t, 64 * GIB),
  },
  {
    key: 'maxResponseHeaders',
    flag: 'max-response-headers',
    env: 'ECHO_MAX_RESPONSE_HEADERS',
    default: '32',
    help: 'most extra headers the header control may add (0 = none)',
    parse: (t) => parseInteger(t, 0, 1000),
  },
  {
    key: 'failFirstKeys',
    flag: 'fail-first-keys',
    env: 'ECHO_FAIL_FIRST_KEYS',
    default: '10000',
    help: 'most keys the fail-first control counts attempts for, per replica; over it the oldest key is forgotten',
    parse: (t) => parseInteger(t, 1, 1_000_000),
  },
  {
    key: 'failFirstTtlMs',
    flag: 'fail-first-ttl',
    env: 'ECHO_FAIL_FIRST_TTL',
    default: '10m',
    help: 'how long the fail-first control counts attempts for a key, from its first attempt',
    parse: (t) => parseDuration(t, 24 * HOUR, 1),
  },
  {
    key: 'defaultControls',
    flag: 'default-controls',
    env: 'ECHO_DEFAULT_CONTROLS',
    default: '',
    help: 'controls applied to every echo request that does not set them, as a query string: echo_status=503:1,200:9&echo_delay=20ms (HTTP only)',
    parse: (t) => t.trim().replace(/^\?/, ''),
  },
  {
    key: 'sickAnswer',
    flag: 'sick-answer',
    env: 'ECHO_SICK_ANSWER',
    default: '503',
    help: 'what the echo answers while the health state is sick: a 5xx status, or reset, reset:CODE (an HTTP/2 error code), close',
    parse: parseSickAnswer,
  },
  {
    key: 'healthControl',
    flag: 'health-control',
    env: 'ECHO_HEALTH_CONTROL',
    default: 'false',
    help: 'let clients fail the health endpoints (failover tests)',
    parse: parseBoolean,
  },
  {
    key: 'identity',
    flag: 'identity',
    env: 'ECHO_IDENTITY',
    default: 'true',
    help: 'echo the server hostname and interface addresses',
    parse: parseBoolean,
  },
  {
    key: 'metrics',
    flag: 'metrics',
    env: 'ECHO_METRICS',
    default: 'true',
    help: 'collect and serve Prometheus metrics',
    parse: parseBoolean,
  },
  {
    key: 'echoEnv',
    flag: 'echo-env',
    env: 'ECHO_ECHO_ENV',
    default: '',
    help: 'environment variables to echo: names or prefixes like APP_* (none by default)',
    parse: envPatterns,
  },
  {
    key: 'livenessPath',
    flag: 'liveness-path',
    env: 'ECHO_LIVENESS_PATH',
    default: '/livez',
    help: 'liveness endpoint path (empty disables)',
    parse: endpointPath,
  },
  {
    key: 'readinessPath',
    flag: 'readiness-path',
    env: 'ECHO_READINESS_PATH',
    default: '/readyz',
    help: 'readiness endpoint path (empty disables)',
    parse: endpointPath,
  },
  {
    key: 'metricsPath',
    flag: 'metrics-path',
    env: 'ECHO_METRICS_PATH',
    default: '/metrics',
    help: 'Prometheus metrics path (empty disables)',
    parse: endpointPath,
  },
  {
    key: 'versionPath',
    flag: 'version-path',
    env: 'ECHO_VERSION_PATH',
    default: '/version',
    help: 'version and build info path (empty disables)',
    parse: endpointPath,
  },
  {
    key: 'healthcheckTimeoutMs',
    flag: 'healthcheck-timeout',
    env: 'ECHO_HEALTHCHECK_TIMEOUT',
    default: '5s',
    help: 'deadline for the whole `echo-server healthcheck`',
    parse: (t) => parseDuration(t, 60_000, 1),
  },
  {
    key: 'h2c',
    flag: 'h2c',
    env: 'ECHO_H2C',
    default: 'true',
    help: 'accept cleartext HTTP/2 (prior knowledge or Upgrade: h2c) on the HTTP port',
    parse: parseBoolean,
  },
  {
    key: 'https',
    flag: 'https',
    env: 'ECHO_HTTPS',
    default: 'false',
    help: 'serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) on --https-port',
    parse: parseBoolean,
  },
  {
    key: 'httpsPort',
    flag: 'https-port',
    env: 'ECHO_HTTPS_PORT',
    default: '8443',
    help: 'TCP port of the HTTPS listener',
    parse: (t) => parseInteger(t, 0, 65535),
  },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'ECHO_TLS_CERT',
    default: '',
    help: 'PEM certificate chain file; reloaded when it changes. Empty: a self-signed one made in memory',
    parse: (t) => t.trim(),
  },
  {
    key: 'tlsKey',
    flag: 'tls-key',
    env: 'ECHO_TLS_KEY',
    default: '',
    help: 'PEM private key file for --tls-cert',
    parse: (t) => t.trim(),
  },
  {
    key: 'tlsClientAuth',
    flag: 'tls-client-auth',
    env: 'ECHO_TLS_CLIENT_AUTH',
    default: 'none',
    help: 'client certificates: none, request (echo if sent) or require',
    parse: oneOf(TLS_CLIENT_AUTH),
  },
  {
    key: 'tlsClientCa',
    flag: 'tls-client-ca',
    env: 'ECHO_TLS_CLIENT_CA',
    default: '',
    help: 'PEM CA bundle client certificates are verified against',
    parse: (t) => t.trim(),
  },
  {
    key: 'proxyProtocol',
    flag: 'proxy-protocol',
    env: 'ECHO_PROXY_PROTOCOL',
    default: '',
    help: 'listeners that require a PROXY protocol v1/v2 header: http, https, tcp (both TCP echo ports)',
    parse: proxyListeners,
  },
  {
    key: 'websocket',
    flag: 'websocket',
    env: 'ECHO_WEBSOCKET',
    default: 'true',
    help: 'echo WebSocket messages on any path',
    parse: parseBoolean,
  },
  {
    key: 'wsMaxMessage',
    flag: 'ws-max-message',
    env: 'ECHO_WS_MAX_MESSAGE',
    default: '1MiB',
    help: 'largest WebSocket message (close 1009 above)',
    parse: (t) => parseSize(t, 64 * 1024 ** 2, 1),
  },
  {
    key: 'wsMaxRate',
    flag: 'ws-max-rate',
    env: 'ECHO_WS_MAX_RATE',
    default: '100',
    help: 'WebSocket messages per second per connection (close 1008 above)',
    parse: (t) => parseInteger(t, 1, 100_000),
  },
  {
    key: 'wsIdleTimeoutMs',
    flag: 'ws-idle-timeout',
    env: 'ECHO_WS_IDLE_TIMEOUT',
    default: '60s',
    help: 'close a WebSocket that sends no message for this long (0 = never; pings still drop dead peers)',
    parse: (t) => parseDuration(t, HOUR),
  },
  {
    key: 'sse',
    flag: 'sse',
    env: 'ECHO_SSE',
    default: 'true',
    help: 'answer Accept: text/event-stream with Server-Sent Events',
    parse: parseBoolean,
  },
  {
    key: 'sseIntervalMs',
    flag: 'sse-interval',
    env: 'ECHO_SSE_INTERVAL',
    default: '1s',
    help: 'time between SSE tick events',
    parse: (t) => parseDuration(t, 60_000, 10),
  },
  {
    key: 'sseCount',
    flag: 'sse-count',
    env: 'ECHO_SSE_COUNT',
    default: '10',
    help: 'tick events before an SSE stream ends (0 = the echo event only)',
    parse: (t) => parseInteger(t, 0, 10_000),
  },
  {
    key: 'compress',
    flag: 'compress',
    env: 'ECHO_COMPRESS',
    default: 'off',
    help: "compress echoes as the client's Accept-Encoding prefers (auto) when a request does not say (echo_compress); off: only when it does",
    parse: oneOf(['off', 'auto'] as const),
  },
  {
    key: 'grpc',
    flag: 'grpc',
    env: 'ECHO_GRPC',
    default: 'true',
    help: 'answer gRPC calls (application/grpc over HTTP/2, gRPC-Web on any version) with the echo, health and reflection services',
    parse: parseBoolean,
  },
  // --- workers and the metrics listener
  {
    key: 'workers',
    flag: 'workers',
    env: 'ECHO_WORKERS',
    default: '1',
    help: 'processes sharing the listening ports; auto: one per CPU the container may use',
    parse: autoOr((t) => parseInteger(t, 1, 256)),
  },
  {
    key: 'metricsPort',
    flag: 'metrics-port',
    env: 'ECHO_METRICS_PORT',
    default: '0',
    help: 'serve --metrics-path on this port only, away from the echo (0: on the HTTP port)',
    parse: (t) => parseInteger(t, 0, 65535),
  },
  {
    key: 'workerBalance',
    flag: 'worker-balance',
    env: 'ECHO_WORKER_BALANCE',
    default: 'primary',
    help: 'with --workers: primary (the primary hands connections out in turn) or reuseport (each worker binds; the kernel spreads them)',
    parse: oneOf(WORKER_BALANCE),
  },
  // --- the L4 echo
  {
    key: 'tcpPort',
    flag: 'tcp-port',
    env: 'ECHO_TCP_PORT',
    default: '',
    help: 'port of the raw TCP echo: a JSON line naming the connection, then every byte echoed (empty: off; 0 picks a free one)',
    parse: optionalPort,
  },
  {
    key: 'tcpBanner',
    flag: 'tcp-banner',
    env: 'ECHO_TCP_BANNER',
    default: 'true',
    help: 'begin each TCP echo connection with the JSON line; false: a pure echo for client-first protocols',
    parse: parseBoolean,
  },
  {
    key: 'tcpMaxBytes',
    flag: 'tcp-max-bytes',
    env: 'ECHO_TCP_MAX_BYTES',
    default: '1GiB',
    help: 'bytes one TCP echo connection may send; it is closed after echoing that many (0 = no cap)',
    parse: (t) => parseSize(t, 64 * GIB),
  },
  {
    key: 'tcpMaxRate',
    flag: 'tcp-max-rate',
    env: 'ECHO_TCP_MAX_RATE',
    default: '0',
    help: 'bytes per second one TCP echo connection is echoed at; reading pauses to keep to it (0 = no limit)',
    parse: (t) => parseSize(t, 64 * GIB),
  },
  {
    key: 'tcpTlsPort',
    flag: 'tcp-tls-port',
    env: 'ECHO_TCP_TLS_PORT',
    default: '',
    help: 'port of the TCP echo over TLS, with the HTTPS certificate settings (--tls-cert or a self-signed one, --tls-client-auth); the banner adds the TLS facts (empty: off)',
    parse: optionalPort,
  },
  {
    key: 'udpPort',
    flag: 'udp-port',
    env: 'ECHO_UDP_PORT',
    default: '',
    help: 'port of the UDP echo: each datagram answered by one, never more than 3 times its size (empty: off; 0 picks a free one)',
    parse: optionalPort,
  },
  {
    key: 'udpMode',
    flag: 'udp-mode',
    env: 'ECHO_UDP_MODE',
    default: 'envelope',
    help: 'envelope (a JSON envelope naming peer and replica, or the raw bytes when it would exceed 3 times the datagram) or echo (the exact bytes)',
    parse: oneOf(UDP_MODES),
  },
  {
    key: 'udpRatePerSource',
    flag: 'udp-rate-per-source',
    env: 'ECHO_UDP_RATE_PER_SOURCE',
    default: '100',
    help: 'datagrams per second one source address gets answered; more are dropped and counted',
    parse: (t) => parseInteger(t, 1, 1_000_000),
  },
  {
    key: 'udpMaxPps',
    flag: 'udp-max-pps',
    env: 'ECHO_UDP_MAX_PPS',
    default: '10000',
    help: 'datagrams per second answered from all sources together; more are dropped and counted',
    parse: (t) => parseInteger(t, 1, 10_000_000),
  },
  // --- GET /forward: the server calling out on a client's behalf, behind an allowlist
  {
    key: 'forwardAllow',
    flag: 'forward-allow',
    env: 'ECHO_FORWARD_ALLOW',
    default: '',
    help: "what GET /forward may call: CIDRs, host names, host:port or CIDR:port, comma-separated; loopback, link-local/metadata addresses and this server's own ports need an entry of their own (empty: off, /forward is echoed)",
    parse: (t) => parseAllowList(parseList(t)),
  },
  {
    key: 'forwardMaxCount',
    flag: 'forward-max-count',
    env: 'ECHO_FORWARD_MAX_COUNT',
    default: '10',
    help: 'most calls one /forward request may ask for (?count=; 400 above)',
    parse: (t) => parseInteger(t, 1, 1000),
  },
  {
    key: 'forwardMaxQps',
    flag: 'forward-max-qps',
    env: 'ECHO_FORWARD_MAX_QPS',
    default: '10',
    help: 'fastest pace one /forward request may ask for, calls per second (?qps=; 400 above; the default pace)',
    parse: (t) => parseInteger(t, 1, 1000),
  },
  {
    key: 'forwardMaxConcurrency',
    flag: 'forward-max-concurrency',
    env: 'ECHO_FORWARD_MAX_CONCURRENCY',
    default: '4',
    help: '/forward requests in progress at once in the process; 503 above',
    parse: (t) => parseInteger(t, 1, 1000),
  },
  {
    key: 'forwardTimeoutMs',
    flag: 'forward-timeout',
    env: 'ECHO_FORWARD_TIMEOUT',
    default: '5s',
    help: 'time one /forward call may take',
    parse: (t) => parseDuration(t, 60_000),
  },
  {
    key: 'forwardMaxResponse',
    flag: 'forward-max-response',
    env: 'ECHO_FORWARD_MAX_RESPONSE',
    default: '256KiB',
    help: "bytes read of one /forward call's answer; more fails the call",
    parse: (t) => parseSize(t, 16 * 1024 ** 2),
  },
];

/** A bad setting: names it, says why; the CLI turns it into exit status 2. */
export class ConfigError extends Error {}

export type Env = Readonly<Record<string, string | undefined>>;

/** The defaults, parsed. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  const config = {} as Record<keyof Config, unknown>;
  for (const s of SETTINGS) config[s.key] = s.parse(s.default);
  return { ...(config as unknown as Config), ...overrides };
}

/** Something in the environment that was ignored; the server still starts. */
export interface ConfigWarning {
  variable: string;
  message: string;
}

/**
 * Settings from environment variables and flags; flags win over the environment.
 * Ignored environment variables (service links, unknown ECHO_* names) are reported
 * through `warn`; everything else that is wrong throws ConfigError.
 */
export function loadConfig(
  flags: ReadonlyMap<string, string>,
  env: Env,
  warn: (w: ConfigWarning) => void = () => {},
): Config {
  const config = defaultConfig() as unknown as Record<keyof Config, unknown>;
  const known = new Set(SETTINGS.map((s) => s.flag));
  for (const name of flags.keys()) {
    if (!known.has(name)) throw new ConfigError(`unknown flag --${name} (see --help)`);
  }
  for (const w of unknownVariables(env)) warn(w);
  /** Where each explicitly given setting came from, to name it in messages. */
  const given = new Map<keyof Config, string>();
  for (const s of SETTINGS) {
    const fromFlag = flags.get(s.flag);
    let fromEnv = env[s.env];
    // Warned about even when a flag wins: the variable is there, and ignored, either way.
    if (fromEnv !== undefined && SERVICE_LINK_VALUE.test(fromEnv.trim())) {
      warn({
        variable: s.env,
        message: `ignored ${s.env}=${clip(fromEnv)}: a Kubernetes service link for a Service named like the variable, not a setting (set enableServiceLinks: false in the pod spec, or give the setting as a flag)`,
      });
      fromEnv = undefined;
    }
    const [text, source] = fromFlag !== undefined ? [fromFlag, `--${s.flag}`] : [fromEnv, s.env];
    if (text === undefined) continue;
    given.set(s.key, source);
    try {
      config[s.key] = s.parse(text);
    } catch (err) {
      if (err instanceof ParseError) throw new ConfigError(`invalid ${source}: ${err.message}`);
      throw err;
    }
  }
  const result = config as unknown as Config;
  checkNeedsHttps(result, given);
  checkConsistency(result);
  return result;
}

// Kubernetes service links: for every Service in the namespace (unless the pod sets
// enableServiceLinks: false) each container gets <NAME>_SERVICE_HOST, <NAME>_PORT=tcp://ip:port,
// <NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR], ... A Service named `echo` or `echo-*`
// lands in our ECHO_ namespace.
const SERVICE_LINK_VALUE = /^(?:tcp|udp|sctp):\/\//i;
const SERVICE_LINK_NAME = [
  /^ECHO_(?:[A-Z0-9_]+_)?SERVICE_(?:HOST|PORT)(?:_[A-Z0-9_]+)?$/,
  /^ECHO_(?:[A-Z0-9_]+_)?PORT_[0-9]+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?$/,
];

/** ECHO_* variables that are neither settings nor service links: most likely typos. */
function unknownVariables(env: Env): ConfigWarning[] {
  const settings = new Set(SETTINGS.map((s) => s.env));
  const out: ConfigWarning[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('ECHO_') || settings.has(name) || value === undefined) continue;
    if (SERVICE_LINK_NAME.some((re) => re.test(name)) || SERVICE_LINK_VALUE.test(value.trim())) continue;
    out.push({
      variable: name,
      message: `ignored ${name}: not a setting; did you mean ${closest(name, [...settings])}? (see --help)`,
    });
  }
  return out;
}

/** The candidate nearest to `name` by edit distance (ties: the first). */
export function closest(name: string, candidates: readonly string[]): string {
  let best = candidates[0] ?? '';
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** Levenshtein distance, two rows; the names compared are short. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** Settings that only mean something on the HTTPS listener are refused without it, not silently ignored. */
function checkNeedsHttps(c: Config, given: ReadonlyMap<keyof Config, string>): void {
  if (c.https) return;
  // The TLS TCP echo uses the certificate settings too; the HTTPS port's own still need --https.
  const certificates = c.tcpTlsPort === null;
  const ignored: [keyof Config, boolean][] = [
    ['tlsCert', certificates && c.tlsCert !== ''],
    ['tlsKey', certificates && c.tlsKey !== ''],
    ['tlsClientAuth', certificates && c.tlsClientAuth !== 'none'],
    ['tlsClientCa', certificates && c.tlsClientCa !== ''],
    ['httpsPort', true],
    ['proxyProtocol', c.proxyProtocol.includes('https')],
  ];
  for (const [key, set] of ignored) {
    const source = given.get(key);
    if (set && source !== undefined)
      throw new ConfigError(`invalid ${source}: it needs --https (or ECHO_HTTPS=true), which is off`);
  }
}

function checkConsistency(c: Config): void {
  if (c.headersTimeoutMs > c.requestTimeoutMs) {
    throw new ConfigError('invalid --headers-timeout: it must not exceed --request-timeout');
  }
  if (c.idleTimeoutMs > 0 && c.maxDelayMs >= c.idleTimeoutMs) {
    throw new ConfigError(
      'invalid --max-delay: it must be shorter than --idle-timeout, or delayed requests would be cut off',
    );
  }
  if ((c.tlsCert === '') !== (c.tlsKey === ''))
    throw new ConfigError('invalid --tls-cert/--tls-key: give both files, or neither for a self-signed certificate');
  if (c.tlsClientAuth === 'require' && c.tlsClientCa === '')
    throw new ConfigError('invalid --tls-client-auth: require needs --tls-client-ca to verify against');
  if (c.https && c.httpsPort === c.port && c.port !== 0)
    throw new ConfigError('invalid --https-port: it must differ from --port');
  if (c.metricsPort !== 0 && (c.metricsPort === c.port || (c.https && c.metricsPort === c.httpsPort)))
    throw new ConfigError('invalid --metrics-port: it must differ from --port and --https-port');
  if (c.proxyProtocol.includes('tcp') && c.tcpPort === null && c.tcpTlsPort === null)
    throw new ConfigError('invalid --proxy-protocol: tcp needs --tcp-port or --tcp-tls-port');
  const tcpPorts = [c.port, ...(c.https ? [c.httpsPort] : []), ...(c.metricsPort !== 0 ? [c.metricsPort] : [])];
  if (c.tcpPort !== null && c.tcpPort !== 0 && tcpPorts.includes(c.tcpPort))
    throw new ConfigError('invalid --tcp-port: it must differ from --port, --https-port and --metrics-port');
  if (c.tcpTlsPort !== null && c.tcpTlsPort !== 0 && [...tcpPorts, c.tcpPort].includes(c.tcpTlsPort))
    throw new ConfigError(
      'invalid --tcp-tls-port: it must differ from --port, --https-port, --metrics-port and --tcp-port',
    );
  const paths = [c.livenessPath, c.readinessPath, c.metricsPath, c.versionPath].filter((p) => p !== '');
  if (new Set(paths).size !== paths.length)
    throw new ConfigError('invalid endpoint paths: liveness, readiness, metrics and version paths must differ');
}

/** The effective configuration as plain data, for the startup log line. */
export function describeConfig(c: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const v = c[s.key];
    out[s.key] = v instanceof NetworkSet ? v.entries : v;
  }
  return out;
}
