// `echo-server call URL...`: outbound calls from inside the container (which has no
// shell and no curl), one line per call and a summary; exit 0 when every call
// succeeded, 1 when one failed, 2 on bad arguments.
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import { CallError, parseTarget } from './calls/call.ts';
import { runCalls, type Summary } from './calls/run.ts';
import { continueTrace } from './calls/trace.ts';
import { parseDuration, parseInteger, ParseError } from './util/parse.ts';

export interface CallIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const CALL_USAGE = `Usage: echo-server call URL... [flags]
  schemes: http https h2c h2 grpc grpcs ws wss tcp tls udp (tcp, tls, udp: the L4 echo ports)
  grpc: the echo service's Echo, or the path /grpc.health.v1.Health/Check
  --count N           calls per URL (default 1, at most 100000)
  --qps N             calls per second, 0 = back to back (default 0)
  --timeout D         per call (default 5s)
  --method M          HTTP method (default GET)
  --header 'K: V'     a request header (repeatable)
  --body TEXT         request body (the payload for tcp, tls and udp)
  --proxy-protocol v1|v2  send a PROXY header first
  --sni NAME --alpn a,b --ca FILE --cert FILE --key FILE --insecure   TLS
  --new-connection    a connection per call (default: http/https calls keep one alive)
  --max-response SIZE bytes read of an answer (default 1048576)
  --json              one JSON object per call and one for the summary
`;

const OPTIONS = {
  count: { type: 'string' },
  qps: { type: 'string' },
  timeout: { type: 'string' },
  method: { type: 'string' },
  header: { type: 'string', multiple: true },
  body: { type: 'string' },
  'proxy-protocol': { type: 'string' },
  sni: { type: 'string' },
  alpn: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  insecure: { type: 'boolean' },
  'new-connection': { type: 'boolean' },
  json: { type: 'boolean' },
  'max-response': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

export async function callCommand(argv: readonly string[], io: CallIo): Promise<0 | 1 | 2> {
  let parsed;
  try {
    parsed = readArgs(argv);
  } catch (err) {
    if (!(
      err instanceof UsageError ||
      err instanceof CallError ||
      err instanceof ParseError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ))
      throw err;
    io.stderr.write(`echo-server call: ${(err as Error).message}\n${CALL_USAGE}`);
    return 2;
  }
  if (parsed === 'help') {
    io.stdout.write(CALL_USAGE);
    return 0;
  }
  const { urls, json, ...o } = parsed;
  const summary = await runCalls(urls, o, (r) => {
    if (json) {
      io.stdout.write(
        JSON.stringify({
          n: r.n,
          url: r.url,
          protocol: r.protocol,
          status: r.status,
          ok: r.ok,
          replica: r.replica,
          latencyMs: r.latencyMs,
          error: r.error,
          requestId: r.requestId,
          spanId: r.spanId,
          localPort: r.localPort ?? null,
          target: seenBy(r.echo),
        }) + '\n',
      );
      return;
    }
    const what = r.error === null ? String(r.status) : `error=${r.error}`;
    io.stdout.write(`${r.n} ${r.url} ${what} replica=${r.replica ?? '-'} protocol=${r.protocol} ${r.latencyMs}ms\n`);
  });
  io.stdout.write(
    json ? JSON.stringify({ summary, traceId: o.trace.traceId }) + '\n' : summaryText(summary, o.trace.traceId),
  );
  return summary.failed === 0 ? 0 : 1;
}

/** What an echo-server target saw of the call (HTTP echo or L4 banner), for --json. */
function seenBy(echo: unknown): unknown {
  if (typeof echo !== 'object' || echo === null) return null;
  const e = echo as Record<string, unknown>;
  return {
    method: e.method,
    path: e.path,
    requestId: e.requestId,
    trace: e.trace,
    proxy: e.proxy ?? null,
    body: e.body,
    tls: e.tls ?? null,
  };
}

function summaryText(s: Summary, traceId: string): string {
  const counts = (m: Record<string, number>) =>
    Object.entries(m)
      .map(([k, v]) => `${k}×${v}`)
      .join(' ') || '-';
  const l = s.latencyMs;
  return (
    `summary: ${s.calls} calls, ${s.ok} ok, ${s.failed} failed; statuses ${counts(s.statuses)}; replicas ${counts(s.replicas)}; ` +
    `latency ${l === null ? '-' : `p50 ${l.p50}ms p90 ${l.p90}ms p99 ${l.p99}ms max ${l.max}ms`}; trace ${traceId}\n`
  );
}

function readArgs(argv: readonly string[]) {
  const { values: v, positionals } = parseArgs({
    args: [...argv],
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (v.help) return 'help' as const;
  if (positionals.length === 0) throw new UsageError('give at least one URL');
  for (const u of positionals) parseTarget(u);
  const headers: [string, string][] = (v.header ?? []).map((h) => {
    const colon = h.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.slice(0, colon).trim()))
      throw new UsageError(`--header "${h.slice(0, 100)}" is not "Name: value"`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  const pp = v['proxy-protocol'];
  if (pp !== undefined && pp !== 'v1' && pp !== 'v2') throw new UsageError('--proxy-protocol is v1 or v2');
  const proxyProtocol: 'v1' | 'v2' | null = pp ?? null;
  const method = v.method ?? 'GET';
  if (!/^[A-Z]{1,20}$/.test(method))
    throw new UsageError(`--method "${method.slice(0, 30)}" is not an HTTP method such as GET`);
  const file = (name: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`--${name}: ${(err as Error).message}`);
    }
  };
  const num = (name: string, text: string | undefined, dflt: string, max: number, min = 0) => {
    try {
      return parseInteger(text ?? dflt, min, max);
    } catch (err) {
      throw new UsageError(`--${name}: ${(err as Error).message}`);
    }
  };
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(v.timeout ?? '5s', 3_600_000, 1);
  } catch (err) {
    throw new UsageError(`--timeout: ${(err as Error).message}`);
  }
  const tls = tlsArgs(v, file);
  return {
    urls: positionals,
    json: v.json ?? false,
    count: num('count', v.count, '1', 100_000, 1),
    newConnection: v['new-connection'] === true,
    qps: num('qps', v.qps, '0', 10_000),
    maxResponseBytes: num('max-response', v['max-response'], '1048576', 64 * 1024 ** 2, 1),
    method,
    headers,
    body: Buffer.from(v.body ?? ''),
    timeoutMs,
    proxyProtocol,
    tls,
    trace: continueTrace(null),
    requestId: null,
    forwarded: [],
  };
}

/**
 * The TLS flags, checked now: a file that is not PEM, a key that is not the
 * certificate's or an ALPN name TLS cannot carry is a bad argument (exit 2), not a
 * failure of the first call's handshake.
 */
function tlsArgs(
  v: { insecure?: boolean; sni?: string; alpn?: string; ca?: string; cert?: string; key?: string },
  file: (name: string, path: string | undefined) => Buffer | undefined,
) {
  const alpn = v.alpn?.split(',').map((a) => a.trim());
  for (const a of alpn ?? [])
    if (Buffer.byteLength(a) < 1 || Buffer.byteLength(a) > 255)
      throw new UsageError(`--alpn: "${a.slice(0, 40)}" is not a protocol name (1 to 255 bytes)`);
  const ca = file('ca', v.ca);
  const cert = file('cert', v.cert);
  const key = file('key', v.key);
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--cert and --key go together');
  const check = (flags: string, options: Parameters<typeof createSecureContext>[0]) => {
    try {
      createSecureContext(options);
    } catch (err) {
      throw new UsageError(`${flags}: ${(err as Error).message}`);
    }
  };
  if (ca !== undefined) {
    check('--ca', { ca });
    // A file without a certificate is taken as an empty list: every call would fail verification.
    try {
      new X509Certificate(ca);
    } catch (err) {
      throw new UsageError(`--ca: ${v.ca} holds no PEM certificate (${(err as Error).message})`);
    }
  }
  if (cert !== undefined && key !== undefined) check('--cert/--key', { cert, key });
  return {
    insecure: v.insecure ?? false,
    ...(v.sni !== undefined ? { servername: v.sni } : {}),
    ...(alpn !== undefined ? { alpn } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
  };
}
