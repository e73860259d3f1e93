// The application: one route table for the operations endpoints, the echo for
// everything else. Side effects (logger, metrics, randomness, identity, environment)
// are injected, so tests drive exactly the code that runs in production.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLarge, readBody } from './body.ts';
import type { Config, Env } from './config.ts';
import {
  ControlError, HEADER_PREFIX, INTERIM_CODES, QUERY_PREFIX, addControlInput, parseControls, pickStatus,
  type ControlInput, type Controls,
} from './controls.ts';
import { Health } from './health.ts';
import type { Identity } from './identity.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import { EMPTY_BODY, buildEcho, type BodyResult, type EchoContext } from './model.ts';
import { HTML_CSP } from './render/html.ts';
import { RENDERERS, negotiate, parseFormat, type Format } from './render/negotiate.ts';
import { BUILD_INFO } from './version.ts';
import { GeneratedBody } from './generate.ts';
import { normalizeIp } from './addresses.ts';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics | null;
  /** [0, 1); the weighted status choice uses it. */
  random: () => number;
  identity: Identity | null;
  env: Env;
}

export interface App {
  handle(this: void, req: IncomingMessage, res: ServerResponse): void;
  health: Health;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  readonly inFlight: number;
}

type OpsHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** What one pass over the raw headers finds; the echo never needs `req.headers`. */
interface HeaderScan {
  accept: string | undefined;
  requestId: string | undefined;
  contentLength: string | undefined;
  userAgent: string | undefined;
  chunked: boolean;
  controls: [string, string][] | null;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp(config: Config, deps: AppDeps): App {
  const health = new Health();
  const { logger, metrics } = deps;
  const echoContext: EchoContext = {
    trustedProxies: config.trustedProxies,
    identity: config.identity ? deps.identity : null,
    env: allowedEnv(deps.env, config.echoEnv),
  };
  const generated = new GeneratedBody();
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  const text = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    });
    res.end(body);
  };

  // The route table: operations endpoints by exact path; everything else echoes.
  const routes = new Map<string, OpsHandler>();
  const addRoute = (path: string, handler: OpsHandler) => {
    if (path !== '') routes.set(path, handler);
  };
  addRoute(config.livenessPath, (_req, res) => {
    if (health.checkLive()) text(res, 200, 'ok\n');
    else text(res, 503, 'unhealthy\n');
  });
  addRoute(config.readinessPath, (_req, res) => {
    if (health.checkReady()) text(res, 200, 'ready\n');
    else text(res, 503, health.draining ? 'draining\n' : 'not ready\n');
  });
  if (metrics !== null) {
    addRoute(config.metricsPath, (_req, res) => {
      metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(body);
      }, (err: unknown) => {
        logger.error({ err }, 'metrics collection failed');
        text(res, 500, 'metrics collection failed\n');
      });
    });
  }
  addRoute(config.versionPath, (_req, res) => {
    const body = JSON.stringify(BUILD_INFO) + '\n';
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  });

  function finished(): void {
    inFlight--;
    if (inFlight === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    inFlight++;
    metrics?.requestStarted();
    const uri = req.url ?? '/';
    const q = uri.indexOf('?');
    const ops = routes.get(q < 0 ? uri : uri.slice(0, q));
    const scan = scanHeaders(req.rawHeaders, config.controls);
    const requestId = scan.requestId !== undefined && REQUEST_ID.test(scan.requestId) ? scan.requestId : randomUUID();
    const state = { bytesIn: 0, bytesOut: 0 };
    const logThis = config.accessLog && (ops === undefined || config.logOpsRequests);
    res.once('close', () => {
      const seconds = (performance.now() - start) / 1000;
      finished();
      metrics?.requestFinished(req.method ?? 'OTHER', res.statusCode, seconds);
      if (logThis) {
        logger.info({
          reqId: requestId, method: req.method, uri, status: res.statusCode, bytesIn: state.bytesIn,
          bytesOut: state.bytesOut, durationMs: Math.round(seconds * 1e6) / 1000,
          clientIp: normalizeIp(req.socket.remoteAddress ?? ''), userAgent: scan.userAgent,
          ...(res.writableFinished ? {} : { aborted: true }),
        }, 'request');
      }
    });
    if (health.draining) res.shouldKeepAlive = false;
    if (ops !== undefined) {
      ops(req, res);
      return;
    }
    res.setHeader('X-Request-Id', requestId);

    let format: Format;
    let controls: Controls | null = null;
    try {
      const input = controlInput(uri, q, scan.controls);
      format = pickFormat(input, scan.accept);
      if (input !== null && config.controls) {
        input.delete('format');
        controls = parseControls(input, config);
        if (controls.health !== null) {
          if (!config.healthControl) throw new ControlError('the health control is disabled on this server (--health-control)', 403);
          health.apply(controls.health);
        }
      }
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      state.bytesOut = Buffer.byteLength(err.message) + 1;
      text(res, err.status, err.message + '\n');
      return;
    }

    const declared = scan.contentLength === undefined ? (scan.chunked ? -1 : 0) : Number(scan.contentLength);
    if (declared > config.maxBodySize) {
      rejectLargeBody(res, config.maxBodySize);
      return;
    }
    const respond = (body: BodyResult) => {
      state.bytesIn = body.bytes;
      const reply = () => {
        if (controls?.size != null) sendGenerated(res, controls, controls.size);
        else sendEcho(req, res, body, requestId, declared, format, controls);
      };
      if (controls !== null && controls.delayMs > 0) delay(res, controls.delayMs, reply);
      else reply();
    };
    if (declared === 0) {
      respond(EMPTY_BODY);
      return;
    }
    readBody(req, config.maxBodySize, config.maxEchoBody).then(respond, (err: unknown) => {
      if (err instanceof BodyTooLarge) rejectLargeBody(res, config.maxBodySize);
      else res.destroy(); // the client went away mid-body: nobody to answer
    });

    function sendEcho(req: IncomingMessage, res: ServerResponse, body: BodyResult, id: string, declared: number, format: Format, controls: Controls | null) {
      const echo = buildEcho({
        remoteAddress: req.socket.remoteAddress ?? '', remotePort: req.socket.remotePort, method: req.method ?? '',
        uri, proto: `HTTP/${req.httpVersion}`, rawHeaders: req.rawHeaders, contentLength: declared, body, requestId: id,
      }, echoContext);
      const renderer = RENDERERS[format];
      const out = renderer.render(echo);
      const status = controlledStatus(res, controls);
      res.setHeader('Content-Type', renderer.contentType);
      res.setHeader('Content-Length', Buffer.byteLength(out));
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'no-store');
      if (format === 'html') res.setHeader('Content-Security-Policy', HTML_CSP);
      res.writeHead(status);
      state.bytesOut = req.method === 'HEAD' ? 0 : Buffer.byteLength(out);
      res.end(out);
    }

    function sendGenerated(res: ServerResponse, controls: Controls, size: number) {
      const status = controlledStatus(res, controls);
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Length', size);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'no-store');
      res.writeHead(status);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      generated.pipe(res, size, (n) => { state.bytesOut = n; });
    }
  }

  /** Applies extra headers and sends interim responses; returns the final status. */
  function controlledStatus(res: ServerResponse, controls: Controls | null): number {
    if (controls === null) return 200;
    for (const [name, value] of controls.headers) res.appendHeader(name, value);
    if (controls.status === null) return 200;
    const code = pickStatus(controls.status, deps.random);
    if (!INTERIM_CODES.has(code)) return code;
    if (code === 100) res.writeContinue();
    else if (code === 102) res.writeProcessing();
    else res.writeEarlyHints({});
    return 200;
  }

  function rejectLargeBody(res: ServerResponse, limit: number): void {
    // The rest of the upload is not worth reading: answer and close the connection.
    res.shouldKeepAlive = false;
    text(res, 413, `request body exceeds the limit of ${limit} bytes (--max-body-size)\n`);
  }

  return {
    handle,
    health,
    idle: () => (inFlight === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve))),
    get inFlight() {
      return inFlight;
    },
  };
}

function scanHeaders(raw: readonly string[], controls: boolean): HeaderScan {
  const scan: HeaderScan = { accept: undefined, requestId: undefined, contentLength: undefined, userAgent: undefined, chunked: false, controls: null };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const len = name.length;
    // Compare lengths first: most headers are rejected without lower-casing.
    if (len === 6) {
      if (name.toLowerCase() === 'accept') scan.accept = raw[i + 1];
    } else if (len === 10) {
      if (name.toLowerCase() === 'user-agent') scan.userAgent = raw[i + 1];
    } else if (len === 12) {
      if (name.toLowerCase() === 'x-request-id') scan.requestId = raw[i + 1];
    } else if (len === 14) {
      if (name.toLowerCase() === 'content-length') scan.contentLength = raw[i + 1];
    } else if (len === 17) {
      if (name.toLowerCase() === 'transfer-encoding') scan.chunked = true;
    }
    if (len > HEADER_PREFIX.length && (name.charCodeAt(0) | 0x20) === 0x78 /* x */) {
      const lower = name.toLowerCase();
      if (lower.startsWith(HEADER_PREFIX) && (controls || lower === 'x-echo-format')) {
        (scan.controls ??= []).push([lower.slice(HEADER_PREFIX.length), raw[i + 1]!]);
      }
    }
  }
  return scan;
}

/** Control values from the query (`echo_*`) and headers (`X-Echo-*`); null when there are none. */
function controlInput(uri: string, q: number, headers: [string, string][] | null): ControlInput | null {
  let input: ControlInput | null = null;
  if (q >= 0 && uri.includes(QUERY_PREFIX, q)) {
    for (const [k, v] of new URLSearchParams(uri.slice(q + 1))) {
      if (k.startsWith(QUERY_PREFIX)) addControlInput((input ??= new Map() as ControlInput), k.slice(QUERY_PREFIX.length), k, v);
    }
  }
  if (headers !== null) {
    for (const [name, value] of headers) {
      // The query wins: a header only fills a control the query did not set.
      if (input?.get(name)?.source.startsWith(QUERY_PREFIX)) continue;
      addControlInput((input ??= new Map() as ControlInput), name, `X-Echo-${name[0]!.toUpperCase()}${name.slice(1)}`, value);
    }
  }
  return input;
}

function pickFormat(input: ControlInput | null, accept: string | undefined): Format {
  const requested = input?.get('format');
  if (requested === undefined) return negotiate(accept);
  const format = parseFormat(requested.values[0]!);
  if (format === null) throw new ControlError(`invalid ${requested.source}: use text, json or html`);
  return format;
}

/** Waits, unless the client leaves first. */
function delay(res: ServerResponse, ms: number, then: () => void): void {
  const timer = setTimeout(() => {
    res.off('close', cancel);
    then();
  }, ms);
  const cancel = () => clearTimeout(timer);
  res.once('close', cancel);
}

/** Only variables matching the operator's allowlist, read once at start-up. */
export function allowedEnv(env: Env, patterns: readonly string[]): Record<string, string> | null {
  if (patterns.length === 0) return null;
  const regexes = patterns.map((p) => new RegExp(`^${p.replace(/\*/g, '.*')}$`));
  const out: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value !== undefined && regexes.some((r) => r.test(name))) out[name] = value;
  }
  return out;
}
