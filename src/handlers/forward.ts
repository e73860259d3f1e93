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
import { runCalls, type Summary } from '../calls/run.ts';
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

/** A whole number in [min, max], `fallback` when absent; a string says what is wrong. */
function bounded(
  text: string | null,
  name: string,
  fallback: number,
  min: number,
  max: number,
  setting: string,
): number | string {
  if (text === null) return fallback;
  if (!/^[0-9]+$/.test(text)) return `${name} must be a whole number`;
  // Beyond seven digits it is over any bound: said so, not read (a uint32 from gRPC has ten).
  const digits = text.replace(/^0+(?=[0-9])/, '');
  const n = digits.length > 7 ? Infinity : Number(digits);
  if (n < min) return `${name} must be at least ${min}`;
  if (n > max) return `${name} ${digits.slice(0, 20)} is over ${setting} (${max})`;
  return n;
}

/** A refusal in HTTP terms (400, 403, 502, 503); the gRPC method maps it to a status. */
export interface ForwardRefusal {
  status: number;
  why: string;
}

/** What a forward asks, as text from the query string or the gRPC request (null: absent). */
export interface ForwardAsk {
  url: string | null;
  count: string | null;
  qps: string | null;
}

export interface ForwardPlan {
  target: ReturnType<typeof parseTarget>;
  count: number;
  qps: number;
}

/** The request checked against the bounds (not yet the allowlist: that needs the name resolved). */
export function planForward(ctx: HttpContext, ask: ForwardAsk): ForwardPlan | ForwardRefusal {
  const { config } = ctx;
  const count = bounded(ask.count, 'count', 1, 1, config.forwardMaxCount, '--forward-max-count');
  const qps = bounded(ask.qps, 'qps', config.forwardMaxQps, 1, config.forwardMaxQps, '--forward-max-qps');
  if (typeof count === 'string') return { status: 400, why: count };
  if (typeof qps === 'string') return { status: 400, why: qps };
  if (ask.url === null || ask.url === '') return { status: 400, why: 'forward needs a url' };
  let target: ReturnType<typeof parseTarget>;
  try {
    target = parseTarget(ask.url);
  } catch (err) {
    return { status: 400, why: (err as Error).message };
  }
  if (!SCHEMES.has(target.scheme))
    return { status: 400, why: `forward calls http, https or h2c, not ${target.scheme}` };
  return { target, count, qps };
}

// Forwards in progress per server, HTTP and gRPC together: one bound for both.
const inProgress = new WeakMap<HttpContext, { n: number }>();

/** A place among --forward-max-concurrency, as its release, or the refusal when there is none. */
export function admitForward(ctx: HttpContext): (() => void) | ForwardRefusal {
  const max = ctx.config.forwardMaxConcurrency;
  let gate = inProgress.get(ctx);
  if (gate === undefined) inProgress.set(ctx, (gate = { n: 0 }));
  if (gate.n >= max) return { status: 503, why: `--forward-max-concurrency (${max}) forward requests in progress` };
  gate.n++;
  let released = false;
  const g = gate;
  return () => {
    if (!released) {
      released = true;
      g.n--;
    }
  };
}

/**
 * Deeper than an echo-server's echo ever is, even one hop's /forward answer inside
 * another's (a few levels a hop): a target's answer nested deeper is not kept as its
 * echo, since rendering it again costs stack per level.
 */
const MAX_ECHO_DEPTH = 64;

/** Whether `v` nests objects and arrays more than `max` levels deep (iterative: no stack). */
function deeperThan(v: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[v, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, depth] = next;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(value)) pending.push([child, depth + 1]);
  }
  return false;
}

export interface ForwardCall {
  n: number;
  url: string;
  status: number | string | null;
  ok: boolean;
  protocol: string;
  latencyMs: number;
  error: string | null;
  replica: string | null;
  spanId: string;
  echo: unknown;
}

export interface ForwardAnswer {
  server: { hostname: string; worker?: number } | null;
  traceId: string;
  requestId: string;
  calls: ForwardCall[];
  summary: Summary;
}

/** Resolves, checks every address against the allowlist, and makes the calls with the caller's trace. */
export async function runForward(
  ctx: HttpContext,
  plan: ForwardPlan,
  incoming: { rawHeaders: readonly string[]; requestId: string; signal: AbortSignal },
): Promise<ForwardAnswer | ForwardRefusal> {
  const { config } = ctx;
  const { target, count, qps } = plan;
  let addresses: string[];
  try {
    addresses =
      isIP(target.host) !== 0 ? [target.host] : (await lookup(target.host, { all: true })).map((a) => a.address);
  } catch (err) {
    return { status: 502, why: `${target.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const problem = allowProblem(config.forwardAllow, {
    host: target.host,
    port: target.port,
    addresses,
    ownPorts: ctx.ownPorts,
  });
  if (problem !== null) return { status: 403, why: problem };
  const raw = incoming.rawHeaders;
  const forwarded: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'b3' || name.startsWith('x-b3-')) forwarded.push([name, raw[i + 1]!]);
  }
  const trace = continueTrace(traceOf(raw));
  const calls: ForwardCall[] = [];
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
      requestId: incoming.requestId,
      forwarded,
      signal: incoming.signal,
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
        echo: r.replica === null || deeperThan(r.echo, MAX_ECHO_DEPTH) ? null : r.echo,
      });
    },
  );
  // Named like an echo's `server`, so a caller one hop up sees which replica forwarded.
  const who = ctx.echoContext.identity;
  const server =
    who === null ? null : { hostname: who.hostname, ...(who.worker === undefined ? {} : { worker: who.worker }) };
  return { server, traceId: trace.traceId, requestId: incoming.requestId, calls, summary };
}

const refused = (r: object): r is ForwardRefusal => 'why' in r;
export { refused as isForwardRefusal };

/** The handler, or null when /forward is off (it is then echoed like any path). */
export function createForward(ctx: HttpContext): ((x: HandlerExchange) => void) | null {
  const { config } = ctx;
  if (config.forwardAllow.length === 0) return null;
  return (x) => {
    const q = new URL(x.target, 'http://x').searchParams;
    const refuse = (status: number, why: string) => {
      ctx.log('warn', { peer: x.facts.peerAddress, status }, `forward refused: ${why}`);
      reject(x, status, why);
    };
    if (x.method !== 'GET' && x.method !== 'HEAD') return refuse(405, 'forward takes GET');
    if (declaredLength(x) !== 0) return refuse(400, 'forward takes no request body');
    const plan = planForward(ctx, { url: q.get('url'), count: q.get('count'), qps: q.get('qps') });
    if (refused(plan))
      return refuse(plan.status, plan.why === 'forward needs a url' ? 'forward needs ?url=' : plan.why);
    const release = admitForward(ctx);
    if (typeof release !== 'function') return refuse(release.status, release.why);
    // A client gone stops the run; its place is given back when the run has stopped,
    // so --forward-max-concurrency bounds the calls being made, not the clients waiting.
    const gone = new AbortController();
    x.onClose(() => gone.abort());
    const incoming = {
      rawHeaders: x.requestInfo(0, EMPTY_BODY).rawHeaders,
      requestId: x.requestId,
      signal: gone.signal,
    };
    void runForward(ctx, plan, incoming)
      .then((answer) => {
        if (gone.signal.aborted) return;
        if (refused(answer)) return refuse(answer.status, answer.why);
        // Compact, like the echo's own JSON: indented, the answer grew with the square of the
        // nesting a target's echo has, tens of MiB from a few KiB read.
        send(x, 200, 'application/json; charset=utf-8', JSON.stringify(answer) + '\n');
      })
      .catch((err: unknown) => {
        fail(ctx, x, err);
      })
      .finally(release);
  };
}
