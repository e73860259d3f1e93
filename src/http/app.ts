// The application: one route table for the operations endpoints, the echo for
// everything else. Side effects (logger, metrics, randomness, identity, environment)
// are injected, so tests drive exactly the code that runs in production.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import { normalizeIp } from '../util/addresses.ts';
import { BodyTooLarge, readBody } from './body.ts';
import type { Config, Env } from '../config/settings.ts';
import { clip } from '../util/parse.ts';
import { limitedLog } from '../ops/log-limit.ts';
import { ControlError, INTERIM_CODES, controlInput, parseControls, pickFormat, pickStatus, type Controls } from './controls.ts';
import { GeneratedBody } from './generate.ts';
import { Health } from '../ops/health.ts';
import { healthControlAnswer } from './health-control.ts';
import type { Identity } from '../echo/identity.ts';
import { LOG_URI_MAX, LOG_USER_AGENT_MAX, createAccessLog, logField, type Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { EMPTY_BODY, buildEcho, clientKeyed, type BodyResult, type Echo, type EchoContext } from '../echo/model.ts';
import { HTML_CSP } from '../echo/render/html.ts';
import { RENDERERS, type Format } from '../echo/render/negotiate.ts';
import { mayHaveBody, requestInfo } from './request-info.ts';
import { delay, endWithoutBody, headerListSize, isBodiless, plainAnswer, refuseStream, sendInterim, stopReading as stopReadingRequest } from './response.ts';
import { scanHeaders, type HeaderScan } from './request-head.ts';
import { websocketHandshakeProblem, type WebSocketEcho } from './websocket-handshake.ts';
import type { Duplex } from 'node:stream';
import type { ConnectionFacts } from '../echo/facts.ts';
import { BUILD_INFO } from '../ops/version.ts';

export interface AppDeps {
  logger: Logger;
  metrics: Metrics | null;
  /** [0, 1); the weighted status choice uses it. */
  random: () => number;
  identity: Identity | null;
  env: Env;
}

export interface App {
  /** The request handler for HTTP/1.x and (through node:http2's compatibility API) HTTP/2. */
  handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void;
  /** Takes over a WebSocket upgrade. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, facts: ConnectionFacts): void;
  /** Answers a CONNECT (a tunnel request) with 405, recorded like any request. */
  refuseTunnel(req: IncomingMessage, socket: Duplex, facts: ConnectionFacts): void;
  /** The answer to a request the HTTP/1.1 parser refused (see transport/client-error.ts). */
  clientError(code: string | undefined, current: ServerResponse | null, peer: string): string;
  /** Readiness fails, SSE streams end, WebSockets close with 1001. */
  beginShutdown(): void;
  health: Health;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  readonly inFlight: number;
}

/** One request and its answer, from arrival to the access-log line. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  start: number;
  uri: string;
  scan: HeaderScan;
  requestId: string;
  bytesIn: number;
  bytesOut: number;
  logged: boolean;
  done: boolean;
  /** What the transport knows about the connection (the TCP peer, PROXY header, TLS). */
  facts: ConnectionFacts;
}

/** An operations endpoint answers now (returns true) or later (false: it ends on 'close'). */
type OpsHandler = (x: Exchange) => boolean;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The headers every answer carries, as one flat array (node:http's fastest path to
 * the wire); controls may append to it. Content-Type is always the server's choice.
 */
function answerHeaders(contentType: string, length: number, requestId: string): OutgoingHttpHeader[] {
  return [
    'Content-Type', contentType, 'Content-Length', String(length), 'X-Request-Id', requestId,
    'X-Content-Type-Options', 'nosniff', 'Cache-Control', 'no-store',
  ];
}
const TEXT_TYPE = 'text/plain; charset=utf-8';

/** uri-host [":" port]: a registered name, an IPv4 address or a bracketed IP literal. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]{0,5})?$/;

/** HTTP/1.1 needs exactly one Host (RFC 9112, section 3.2); HTTP/1.0 at most one. */
function hostValid(req: IncomingMessage, scan: HeaderScan): boolean {
  if (scan.hosts > 1) return false;
  if (scan.hosts === 0) return req.httpVersionMinor === 0;
  return HOST.test(scan.host!);
}

export function createApp(config: Config, deps: AppDeps): App {
  const health = new Health();
  const { logger, metrics } = deps;
  const echoContext: EchoContext = {
    trustedProxies: config.trustedProxies,
    clientIpHeader: config.clientIpHeader,
    identity: config.identity ? deps.identity : null,
    env: allowedEnv(deps.env, config.echoEnv),
  };
  const generated = new GeneratedBody();
  const accessLog = createAccessLog(logger);
  // Loaded on the first upgrade: `ws` and what it pulls in cost about 10 MB of
  // resident memory that a server nobody opens a WebSocket to should not carry.
  let websockets: Promise<WebSocketEcho> | null = null;
  const websocketEcho = () => (websockets ??= import('./websocket.ts').then((m) => m.createWebSocketEcho(config, logger)));
  /** Open SSE streams, each with the function that ends it cleanly. */
  const streams = new Set<() => void>();
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  /** A short plain-text answer (operations endpoints, errors). */
  function text(x: Exchange, status: number, body: string, extra?: string[]): void {
    x.bytesOut = Buffer.byteLength(body);
    const headers = answerHeaders(TEXT_TYPE, x.bytesOut, x.requestId);
    if (extra !== undefined) headers.push(...extra);
    x.res.writeHead(status, headers as string[]);
    x.res.end(x.req.method === 'HEAD' ? undefined : body);
  }

  // The route table: operations endpoints by exact path; everything else echoes.
  const routes = new Map<string, OpsHandler>();
  const addRoute = (path: string, handler: OpsHandler) => {
    if (path !== '') routes.set(path, handler);
  };
  /** `?echo_health=` on a probe path sets the state instead of checking it. */
  const healthControl = (x: Exchange): boolean => {
    const answer = healthControlAnswer(x.uri, x.req.rawHeaders, config.healthControl, health);
    if (answer !== null) text(x, answer.status, answer.body);
    return answer !== null;
  };
  addRoute(config.livenessPath, (x) => {
    if (healthControl(x)) return true;
    if (health.checkLive()) text(x, 200, 'ok\n');
    else text(x, 503, 'unhealthy\n');
    return true;
  });
  addRoute(config.readinessPath, (x) => {
    if (healthControl(x)) return true;
    if (health.checkReady()) text(x, 200, 'ready\n');
    else text(x, 503, health.draining ? 'draining\n' : 'not ready\n');
    return true;
  });
  if (metrics !== null && config.metricsPort === 0) { // else on its own listener (metrics-listener.ts)
    addRoute(config.metricsPath, (x) => {
      metrics.scrape().then((body) => {
        x.bytesOut = Buffer.byteLength(body);
        x.res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': x.bytesOut, 'Cache-Control': 'no-store' });
        x.res.end(body);
      }, (err: unknown) => {
        logger.error({ err }, 'metrics collection failed');
        text(x, 500, 'metrics collection failed\n');
      });
      return false;
    });
  }
  addRoute(config.versionPath, (x) => {
    const body = JSON.stringify(BUILD_INFO) + '\n';
    x.bytesOut = Buffer.byteLength(body);
    x.res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': x.bytesOut, 'Cache-Control': 'no-store' });
    x.res.end(body);
    return true;
  });

  /** Bookkeeping once per exchange: in-flight count, metrics, access log. */
  function complete(x: Exchange, aborted: boolean): void {
    if (x.done) return;
    x.done = true;
    const seconds = (performance.now() - x.start) / 1000;
    const { req, res } = x;
    // A client that left before any answer was sent is recorded as 499 (nginx's
    // "client closed request"), not as the 200 node:http would report.
    // Looked up only for the rare abort: a request the transport answered never ends its response.
    const status = !aborted ? res.statusCode : transportAnswers.get(res) ?? (res.headersSent ? res.statusCode : 499);
    metrics?.requestFinished(req.method ?? 'OTHER', status, seconds);
    if (x.logged) {
      accessLog({
        reqId: x.requestId, method: req.method ?? '', uri: x.uri, status, bytesIn: x.bytesIn,
        bytesOut: x.bytesOut, durationMs: Math.round(seconds * 1e6) / 1000,
        clientIp: normalizeIp(x.facts.peerAddress), userAgent: x.scan.userAgent, aborted,
      });
    }
    leave();
  }

  /**
   * Browsers send Origin with WebSocket handshakes and EventSource requests: a page
   * of another site must not read the echo (cookies included) through them. No
   * Origin (curl, ws, servers) or this server's own origin is always allowed.
   */
  function originAllowed(scan: HeaderScan): boolean {
    const origin = scan.origin;
    if (origin === undefined || config.allowedOrigins.includes('*')) return true;
    const o = origin.trim().toLowerCase();
    if (config.allowedOrigins.includes(o)) return true;
    const slash = o.indexOf('://');
    return slash > 0 && scan.host !== undefined && o.slice(slash + 3) === scan.host.trim().toLowerCase();
  }

  const logLimited = limitedLog(logger);

  /** Requests the transport answered itself (a malformed or cut body): the status it sent. */
  const transportAnswers = new WeakMap<ServerResponse, number>();

  /** One request fewer in flight; wakes a drain waiting for none. */
  function leave(): void {
    inFlight--;
    if (inFlight === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** The client's request id when it is sane, else a fresh UUID. */
  function requestIdOf(scan: HeaderScan): string {
    return scan.requestId !== undefined && REQUEST_ID.test(scan.requestId) ? scan.requestId : randomUUID();
  }

  /** The rest of the request body is not wanted: it is not read, and the connection or stream ends with the answer. */
  function stopReading(x: Exchange): void {
    stopReadingRequest(x.req, x.res);
  }

  /** For answers that finish later: complete when the response closes, however it ends. */
  function completeOnClose(x: Exchange): void {
    // writableEnded too: node:http2's compatibility response reports a reset stream as finished.
    x.res.once('close', () => complete(x, !x.res.writableEnded || !x.res.writableFinished));
  }

  /**
   * The handler. An unexpected error answers 500 (or drops the connection if the
   * answer had begun), is logged, and never takes the server down.
   */
  function handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void {
    const start = performance.now();
    inFlight++;
    metrics?.requestStarted();
    const uri = req.url ?? '/';
    const q = uri.indexOf('?');
    const ops = routes.get(q < 0 ? uri : uri.slice(0, q));
    const scan = scanHeaders(req.rawHeaders, config.controls);
    const x: Exchange = {
      req, res, start, uri, scan,
      requestId: requestIdOf(scan),
      bytesIn: 0, bytesOut: 0, logged: config.accessLog && (ops === undefined || config.logOpsRequests), done: false,
      facts,
    };
    if (health.draining) res.shouldKeepAlive = false;
    try {
      // The operations endpoints are cheap and never refused: a full budget must not
      // fail liveness (the orchestrator would restart a healthy replica) or hide /metrics.
      if (ops === undefined && inFlight > config.maxInFlight) refuse(x);
      else if (req.httpVersionMajor === 2 && headerListSize(req.rawHeaders) > config.maxHeaderSize) rejectLargeHead(x, '--max-header-size');
      else if (req.rawHeaders.length > 2 * config.maxHeaderCount) rejectLargeHead(x, '--max-header-count');
      else if (req.httpVersionMajor === 1 && !hostValid(req, scan)) reject(x, 400, 'a request must carry exactly one valid Host header (RFC 9112, section 3.2)');
      else if (scan.expect !== undefined && req.httpVersionMajor === 1 && scan.expect.trim().toLowerCase() !== '100-continue') reject(x, 417, `expectation "${clip(scan.expect)}" is not supported; only 100-continue is`);
      else if (ops === undefined) serveEcho(x, q);
      else serveOps(x, ops);
    } catch (err) {
      fail(x, err);
    }
  }

  /** Over the in-flight budget: 503 on HTTP/1.x, REFUSED_STREAM on HTTP/2 (safe for the client to retry). */
  function refuse(x: Exchange): void {
    metrics?.requestRefused();
    if (x.req.httpVersionMajor === 2) {
      x.res.statusCode = 503;
      refuseStream(x.res);
      complete(x, true);
      return;
    }
    reject(x, 503, `server busy: --max-in-flight (${config.maxInFlight}) requests in progress`, ['Retry-After', '1']);
  }

  /**
   * --request-timeout for HTTP/2: node:http enforces it for HTTP/1.1 only, and an
   * HTTP/2 body that trickles (or never ends) would otherwise hold its stream, and a
   * place in the in-flight budget, for as long as the session lives.
   */
  function bodyDeadline(x: Exchange): void {
    if (x.req.httpVersionMajor !== 2) return;
    const timer = setTimeout(() => {
      if (x.req.complete) return;
      logLimited('warn', { peer: x.facts.peerAddress, limitMs: config.requestTimeoutMs }, 'bad request: request not received in time (--request-timeout)');
      if (x.res.headersSent) {
        x.res.destroy();
        return;
      }
      stopReading(x);
      text(x, 408, 'request not received in time (--request-timeout)\n');
    }, Math.max(0, config.requestTimeoutMs - (performance.now() - x.start)));
    const clear = () => clearTimeout(timer);
    x.req.once('end', clear);
    x.res.once('close', clear);
  }

  /** A 4xx about the request itself: the body is not read, the exchange is recorded. */
  function reject(x: Exchange, status: number, reason: string, extra?: string[]): void {
    stopReading(x); // first: on HTTP/1.1 it decides the Connection header
    text(x, status, `${reason}\n`, extra);
    complete(x, false);
  }

  /** Over a head limit (node:http2 enforces neither): the same 431 on every protocol, naming the limit. */
  function rejectLargeHead(x: Exchange, limit: '--max-header-size' | '--max-header-count'): void {
    logLimited('warn', { peer: x.facts.peerAddress, limit }, 'bad request: request header fields too large');
    reject(x, 431, limit === '--max-header-size'
      ? `request header fields too large (--max-header-size ${config.maxHeaderSize})`
      : `too many header fields (--max-header-count ${config.maxHeaderCount})`);
  }

  /**
   * Operations endpoints take no body, but a client may send one: it is read and
   * discarded within --max-body-size (413 above), like the echo's, before the answer.
   */
  function serveOps(x: Exchange, ops: OpsHandler): void {
    const declared = declaredLength(x);
    const run = () => {
      if (ops(x)) complete(x, false);
      else completeOnClose(x);
    };
    if (declared === 0) {
      run();
      return;
    }
    if (declared > config.maxBodySize) {
      rejectLargeBody(x);
      complete(x, false);
      return;
    }
    completeOnClose(x);
    bodyDeadline(x);
    readBody(x.req, config.maxBodySize, 0).then((body) => {
      x.bytesIn = body.bytes;
      if (ops(x)) complete(x, false);
    }).catch((err: unknown) => {
      if (err instanceof BodyTooLarge) rejectLargeBody(x);
      else x.res.destroy();
    });
  }

  function declaredLength(x: Exchange): number {
    const { scan, req } = x;
    return scan.contentLength !== undefined ? Number(scan.contentLength) : scan.chunked || mayHaveBody(req) ? -1 : 0;
  }

  function fail(x: Exchange, err: unknown): void {
    logger.error({ err: (err as Error).message, reqId: x.requestId, uri: x.uri }, 'request failed');
    let begun = x.res.headersSent;
    try {
      if (!begun) text(x, 500, 'internal error\n');
    } catch {
      begun = true; // the response object itself is unusable
    }
    if (begun) x.res.destroy();
    complete(x, begun);
  }

  function serveEcho(x: Exchange, q: number): void {
    const { req, res, uri, scan } = x;
    let format: Format;
    let controls: Controls | null = null;
    try {
      const input = controlInput(uri, q, scan.controls, config.controls);
      format = pickFormat(input, scan.accept, config.sse);
      if (format === 'sse' && !originAllowed(scan)) throw new ControlError(`origin ${clip(scan.origin ?? '')} may not open event streams here (--allowed-origins)`, 403);
      if (input !== null) {
        controls = parseControls(input, config);
        if (controls.health !== null) {
          if (!config.healthControl) throw new ControlError('the health control is disabled on this server (--health-control)', 403);
          health.apply(controls.health);
        }
      }
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      text(x, err.status, err.message + '\n');
      complete(x, false);
      return;
    }

    const declared = declaredLength(x);
    if (declared > config.maxBodySize) {
      rejectLargeBody(x);
      complete(x, false);
      return;
    }
    const answer = (body: BodyResult) => {
      x.bytesIn = body.bytes;
      try {
        if (controls?.size != null) sendGenerated(x, controls, controls.size);
        else sendEcho(x, body, declared, format, controls);
      } catch (err) {
        fail(x, err); // answers run from timers and promises too, outside handle's guard
      }
    };
    // The common case, a request without body, delay or event stream, is answered and accounted
    // for right here; everything slower completes when its response closes.
    if (declared === 0 && format !== 'sse' && (controls === null || (controls.delayMs === 0 && controls.size === null))) {
      answer(EMPTY_BODY);
      complete(x, false);
      return;
    }
    completeOnClose(x);
    const afterBody = (body: BodyResult) => {
      if (controls !== null && controls.delayMs > 0) delay(res, controls.delayMs, () => answer(body));
      else answer(body);
    };
    if (declared === 0) {
      afterBody(EMPTY_BODY);
      return;
    }
    bodyDeadline(x);
    readBody(req, config.maxBodySize, config.maxEchoBody).then(afterBody, (err: unknown) => {
      if (err instanceof BodyTooLarge) rejectLargeBody(x);
      else res.destroy(); // the client went away mid-body: nobody to answer
    });
  }

  function sendEcho(x: Exchange, body: BodyResult, declared: number, format: Format, controls: Controls | null): void {
    const { req, res } = x;
    const echo = buildEcho(requestInfo(req, x.facts, x.uri, declared, body, x.requestId), echoContext);
    if (format === 'sse') {
      sendEvents(x, echo, controls);
      return;
    }
    const renderer = RENDERERS[format];
    const out = renderer.render(echo);
    const length = Buffer.byteLength(out);
    const headers = answerHeaders(renderer.contentType, length, x.requestId);
    if (format === 'html') headers.push('Content-Security-Policy', HTML_CSP);
    const status = controlledStatus(x, controls, headers);
    if (isBodiless(status)) {
      endWithoutBody(res, status, headers);
      return;
    }
    res.writeHead(status, headers as string[]);
    x.bytesOut = req.method === 'HEAD' ? 0 : length;
    res.end(out);
  }

  /** Server-Sent Events: the echo first, then ticks at the configured interval and count. */
  function sendEvents(x: Exchange, echo: Echo, controls: Controls | null): void {
    const { res } = x;
    const headers: OutgoingHttpHeader[] = [
      'Content-Type', 'text/event-stream; charset=utf-8', 'Cache-Control', 'no-store', 'X-Request-Id', x.requestId,
      'X-Content-Type-Options', 'nosniff', 'X-Accel-Buffering', 'no',
    ];
    // The controls apply to a stream as to any answer: extra headers, interim and final status.
    const status = controlledStatus(x, controls, headers);
    if (isBodiless(status)) {
      endWithoutBody(res, status, headers);
      return;
    }
    res.writeHead(status, headers as string[]);
    const send = (event: string, id: number, data: unknown) => {
      const chunk = `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
      x.bytesOut += Buffer.byteLength(chunk);
      res.write(chunk);
    };
    send('echo', 0, echo);
    let n = 0;
    const end = (reason: 'done' | 'shutdown') => {
      clearInterval(timer);
      streams.delete(stop);
      if (res.writableEnded) return;
      send(reason, n + 1, { ticks: n });
      res.end();
    };
    const stop = () => end('shutdown');
    const timer = setInterval(() => {
      n++;
      send('tick', n, { n, time: new Date().toISOString() });
      if (n >= config.sseCount) end('done');
    }, config.sseIntervalMs);
    streams.add(stop);
    res.once('close', () => {
      clearInterval(timer);
      streams.delete(stop);
    });
    if (config.sseCount === 0) end('done');
  }

  function sendGenerated(x: Exchange, controls: Controls, size: number): void {
    const headers = answerHeaders('application/octet-stream', size, x.requestId);
    const status = controlledStatus(x, controls, headers);
    if (isBodiless(status)) {
      endWithoutBody(x.res, status, headers);
      return;
    }
    x.res.writeHead(status, headers as string[]);
    // The head goes out now, as a string: node:http would put it in front of an
    // interim response still queued behind a pipelined request when the first body
    // write is a Buffer, and the 1xx would land inside the body.
    x.res.flushHeaders();
    if (x.req.method === 'HEAD') {
      x.res.end();
      return;
    }
    generated.pipe(x.res, size, (n) => { x.bytesOut = n; });
  }

  /** Adds the control's extra headers and sends interim responses; returns the final status. */
  function controlledStatus(x: Exchange, controls: Controls | null, headers: OutgoingHttpHeader[]): number {
    if (controls === null) return 200;
    for (const [name, value] of controls.headers) headers.push(name, value);
    if (controls.status === null) return 200;
    const code = pickStatus(controls.status, deps.random);
    if (!INTERIM_CODES.has(code)) return code;
    // RFC 9110, section 15.2: no 1xx to an HTTP/1.0 client; the final answer still comes.
    if (x.req.httpVersionMajor > 1 || x.req.httpVersionMinor >= 1) sendInterim(x.res, code);
    return 200;
  }

  function rejectLargeBody(x: Exchange): void {
    stopReading(x); // first: on HTTP/1.1 it decides the Connection header
    text(x, 413, `request body exceeds the limit of ${config.maxBodySize} bytes (--max-body-size)\n`);
  }

  /**
   * WebSocket: the handshake is echoed as the first message. Every upgrade is one
   * exchange: counted in flight from arrival, and finished exactly once (refused,
   * failed, aborted before the handshake, or closed), whatever `ws` does with it.
   */
  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, facts: ConnectionFacts): void {
    const start = performance.now();
    inFlight++;
    metrics?.requestStarted();
    const scan = scanHeaders(req.rawHeaders, false);
    const requestId = requestIdOf(scan);
    const peer = facts.peerAddress;
    let settled = false;
    const finish = (status: number, fields: object) => {
      if (settled) return;
      settled = true;
      socket.off('close', onEarlyClose);
      const seconds = (performance.now() - start) / 1000;
      metrics?.requestFinished(req.method ?? 'GET', status, seconds);
      if (config.accessLog) {
        logger.info({
          reqId: requestId, method: req.method, uri: logField(req.url, LOG_URI_MAX), status, ...fields, durationMs: Math.round(seconds * 1e6) / 1000,
          clientIp: normalizeIp(peer), userAgent: logField(scan.userAgent, LOG_USER_AGENT_MAX),
        }, 'websocket');
      }
      leave();
    };
    /** The client left before the handshake was answered (nginx's 499). */
    const onEarlyClose = () => finish(499, { aborted: true });
    socket.once('close', onEarlyClose);
    const reject = (status: number, reason: string, extra = '') => {
      if (socket.writable) socket.end(plainAnswer(status, `${reason}\n`, extra));
      else socket.destroy();
      finish(status, { reason });
    };
    try {
      const problem = health.draining ? [503, 'server shutting down'] as const
        : inFlight > config.maxInFlight ? [503, `server busy: --max-in-flight (${config.maxInFlight}) requests in progress`] as const
        : !originAllowed(scan) ? [403, `origin ${clip(scan.origin ?? '')} may not open WebSockets here (--allowed-origins)`] as const
        : websocketHandshakeProblem(req);
      if (problem !== null) {
        if (problem[0] === 503) metrics?.requestRefused();
        reject(problem[0], problem[1], problem[0] === 405 ? 'Allow: GET\r\n' : problem[0] === 426 ? 'Sec-WebSocket-Version: 13\r\n' : problem[0] === 503 ? 'Retry-After: 1\r\n' : '');
        return;
      }
    } catch (err) {
      logger.error({ err: (err as Error).message, reqId: requestId }, 'websocket upgrade failed');
      reject(500, 'internal error');
      return;
    }
    const describe = () => JSON.stringify(buildEcho(requestInfo(req, facts, req.url ?? '/', 0, EMPTY_BODY, requestId), echoContext));
    const accepted = (echo: WebSocketEcho) => {
      if (settled) return; // the client left while the module loaded
      echo.handleUpgrade(req, socket, head, describe, {
        opened: () => socket.off('close', onEarlyClose),
        closed: (summary) => {
          metrics?.websocketMessages(summary.messagesIn, summary.messagesOut);
          finish(101, { bytesIn: summary.bytesIn, messagesIn: summary.messagesIn, messagesOut: summary.messagesOut, closeCode: summary.closeCode });
        },
        refused: (reason) => reject(400, `bad WebSocket handshake: ${reason}`),
      });
    };
    websocketEcho().then(accepted).catch((err: unknown) => {
      logger.error({ err: (err as Error).message, reqId: requestId }, 'websocket upgrade failed');
      if (!settled) reject(500, 'internal error');
    });
  }

  function clientError(code: string | undefined, current: ServerResponse | null, peer: string): string {
    let status = 400;
    let reason = 'malformed request';
    if (code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      reason = 'request header fields too large (--max-header-size)';
    } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      reason = 'request not received in time (--headers-timeout, --request-timeout)';
    }
    logLimited('warn', { peer, code, status }, `bad request: ${reason}`);
    if (current !== null) {
      transportAnswers.set(current, status); // the app is answering it: its exchange records this status
    } else {
      // A request the app never saw is counted here, started and finished, so the
      // in-flight gauge stays true.
      metrics?.requestStarted();
      metrics?.requestFinished('OTHER', status, 0);
    }
    return plainAnswer(status, `${reason}\n`);
  }

  function refuseTunnel(req: IncomingMessage, socket: Duplex, facts: ConnectionFacts): void {
    const start = performance.now();
    const scan = scanHeaders(req.rawHeaders, false);
    const body = 'CONNECT is not supported: this is an echo server, not a proxy\n';
    socket.on('error', () => socket.destroy());
    socket.end(plainAnswer(405, body, 'Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n'));
    const seconds = (performance.now() - start) / 1000;
    metrics?.requestStarted();
    metrics?.requestFinished('CONNECT', 405, seconds);
    if (config.accessLog) {
      accessLog({
        reqId: requestIdOf(scan), method: 'CONNECT', uri: req.url ?? '', status: 405, bytesIn: 0, bytesOut: Buffer.byteLength(body),
        durationMs: Math.round(seconds * 1e6) / 1000, clientIp: normalizeIp(facts.peerAddress), userAgent: scan.userAgent, aborted: false,
      });
    }
  }

  return {
    handle,
    upgrade,
    refuseTunnel,
    clientError,
    beginShutdown() {
      health.beginDrain();
      for (const stop of [...streams]) stop();
      void websockets?.then((echo) => echo.closeAll());
    },
    health,
    idle: () => (inFlight === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve))),
    get inFlight() {
      return inFlight;
    },
  };
}

/** Only variables matching the operator's allowlist, read once at start-up. */
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
