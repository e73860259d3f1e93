// GET /forward?url=...&count=...&qps=...: the server calls a target on the client's
// behalf and answers with what each call got. Off unless --forward-allow lists what
// may be called. Server-side request forgery is the risk, so: only http, https and
// h2c; the name is resolved here, every address checked against the allowlist, and
// the call connects to the address checked (no second lookup to rebind); redirects
// are never followed (a 3xx is a result); count, pace, concurrency, time and answer
// size are all bounded by settings.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseTarget } from '../calls/call.ts';
import { runCalls } from '../calls/run.ts';
import { continueTrace } from '../calls/trace.ts';
import { traceOf } from '../echo/trace.ts';
import { EMPTY_BODY } from '../echo/model.ts';
import { allowProblem } from '../util/allowlist.ts';
import type { HttpContext } from './context.ts';
import type { HandlerExchange } from './exchange.ts';
import { send } from './answer.ts';
import { fail, reject } from './refusals.ts';
import { declaredLength } from './request-body.ts';

export const FORWARD_PATH = '/forward';
const SCHEMES = new Set(['http', 'https', 'h2c']);

/** A whole number in [min, max] from the query, `fallback` when absent; a string says what is wrong. */
function bounded(
  q: URLSearchParams,
  name: string,
  fallback: number,
  min: number,
  max: number,
  setting: string,
): number | string {
  const text = q.get(name);
  if (text === null) return fallback;
  if (!/^[0-9]{1,7}$/.test(text)) return `${name} must be a whole number`;
  const n = Number(text);
  if (n < min) return `${name} must be at least ${min}`;
  if (n > max) return `${name} ${n} is over ${setting} (${max})`;
  return n;
}

/** The handler, or null when /forward is off (it is then echoed like any path). */
export function createForward(ctx: HttpContext): ((x: HandlerExchange) => void) | null {
  const { config } = ctx;
  if (config.forwardAllow.length === 0) return null;
  let inProgress = 0;
  return (x) => {
    const q = new URL(x.target, 'http://x').searchParams;
    const refuse = (status: number, why: string) => {
      ctx.log('warn', { peer: x.facts.peerAddress, status }, `forward refused: ${why}`);
      reject(x, status, why);
    };
    if (x.method !== 'GET' && x.method !== 'HEAD') return refuse(405, 'forward takes GET');
    if (declaredLength(x) !== 0) return refuse(400, 'forward takes no request body');
    const count = bounded(q, 'count', 1, 1, config.forwardMaxCount, '--forward-max-count');
    const qps = bounded(q, 'qps', config.forwardMaxQps, 1, config.forwardMaxQps, '--forward-max-qps');
    if (typeof count === 'string') return refuse(400, count);
    if (typeof qps === 'string') return refuse(400, qps);
    const text = q.get('url');
    if (text === null) return refuse(400, 'forward needs ?url=');
    let target: ReturnType<typeof parseTarget>;
    try {
      target = parseTarget(text);
    } catch (err) {
      return refuse(400, (err as Error).message);
    }
    if (!SCHEMES.has(target.scheme)) return refuse(400, `forward calls http, https or h2c, not ${target.scheme}`);
    if (inProgress >= config.forwardMaxConcurrency)
      return refuse(503, `--forward-max-concurrency (${config.forwardMaxConcurrency}) forward requests in progress`);
    inProgress++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        inProgress--;
      }
    };
    x.onClose(release);
    void forward(ctx, x, target, count, qps, refuse)
      .catch((err: unknown) => {
        fail(ctx, x, err);
      })
      .finally(release);
  };
}

async function forward(
  ctx: HttpContext,
  x: HandlerExchange,
  target: ReturnType<typeof parseTarget>,
  count: number,
  qps: number,
  refuse: (status: number, why: string) => void,
): Promise<void> {
  const { config } = ctx;
  let addresses: string[];
  try {
    addresses =
      isIP(target.host) !== 0 ? [target.host] : (await lookup(target.host, { all: true })).map((a) => a.address);
  } catch (err) {
    return refuse(502, `${target.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const problem = allowProblem(config.forwardAllow, {
    host: target.host,
    port: target.port,
    addresses,
    ownPorts: ctx.ownPorts,
  });
  if (problem !== null) return refuse(403, problem);
  const raw = x.requestInfo(0, EMPTY_BODY).rawHeaders;
  const forwarded: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'b3' || name.startsWith('x-b3-')) forwarded.push([name, raw[i + 1]!]);
  }
  const trace = continueTrace(traceOf(raw));
  const calls: unknown[] = [];
  const summary = await runCalls(
    [target.url.href],
    {
      method: 'GET',
      headers: [],
      body: Buffer.alloc(0),
      timeoutMs: config.forwardTimeoutMs,
      maxResponseBytes: config.forwardMaxResponse,
      proxyProtocol: null,
      tls: { insecure: false },
      address: addresses[0]!,
      count,
      qps,
      trace,
      requestId: x.requestId,
      forwarded,
    },
    (r) => {
      // The target's own echo only when it is an echo-server's (it names its replica).
      calls.push({
        n: r.n,
        url: r.url,
        status: r.status,
        ok: r.ok,
        protocol: r.protocol,
        latencyMs: r.latencyMs,
        error: r.error,
        replica: r.replica,
        spanId: r.spanId,
        echo: r.replica === null ? null : r.echo,
      });
    },
  );
  // Named like an echo's `server`, so a caller one hop up sees which replica forwarded.
  const who = ctx.echoContext.identity;
  const server =
    who === null ? null : { hostname: who.hostname, ...(who.worker === undefined ? {} : { worker: who.worker }) };
  send(
    x,
    200,
    'application/json; charset=utf-8',
    JSON.stringify({ server, traceId: trace.traceId, requestId: x.requestId, calls, summary }, null, 2) + '\n',
  );
}
