// The HTTP stage, wired: what the listener hands over (requests, upgrades, tunnels,
// parser errors) goes to the part that answers it. Admission first (the same limits
// on every protocol), then the route table: an operations endpoint or the echo.
// Side effects (logger, metrics, randomness, identity, environment) are injected,
// so tests drive exactly the code that runs in production.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Config } from '../../config/settings.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import type { Health } from '../../ops/health.ts';
import type { Handlers } from '../../transport/handlers.ts';
import { admissionProblem, declaredOverLimit } from '../../core/admission.ts';
import { createContext, type AppDeps, type HttpContext } from '../../handlers/context.ts';
import { createEchoHandler } from '../../handlers/echo.ts';
import { createEventStreams } from '../sse/event-stream.ts';
import { Exchange } from '../../core/exchange.ts';
import type { BudgetRefusal } from '../../core/ledger.ts';
import { answeredByTransport, answeredOnSocket, HttpExchange } from './exchange.ts';
import { createOpsRoutes, createOpsServer } from '../../handlers/probes.ts';
import { createForward, FORWARD_PATH } from '../../handlers/forward.ts';
import { fail, reject } from '../../handlers/refusals.ts';
import { sendText } from '../../handlers/answer.ts';
import { scanHeaders } from '../../core/request-head.ts';
import { rawAnswer, rawSwitchingProtocols } from './respond.ts';
import { createUpgrades } from '../websocket/upgrade.ts';
import { createGrpc, isGrpcRequest } from '../grpc/serve.ts';
import { grpcFlavour } from '../grpc/wire.ts';
import { H2Exchange } from '../http2/exchange.ts';
import type { RequestHead } from '../../core/admission.ts';
import type { HandlerExchange } from '../../handlers/exchange.ts';

export type { AppDeps };

/** What the transport calls (transport/handlers.ts, declared there), and the wiring's controls. */
export interface App extends Handlers {
  /** Readiness fails, SSE streams end, WebSockets close with 1001. */
  beginShutdown(): void;
  health: Health;
  readonly inFlight: number;
  /** The ports actually bound (a configured 0 becomes the port the system picked). */
  boundPorts(ports: readonly number[]): void;
}

const TUNNEL_REFUSAL = 'CONNECT is not supported: this is an echo server, not a proxy\n';
const TUNNEL_ALLOW = ['Allow', 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS'];

export function createApp(config: Config, deps: AppDeps): App {
  const ctx = createContext(config, deps);
  const { ledger, health } = ctx;
  const routes = createOpsRoutes(ctx);
  const serveOps = createOpsServer(ctx);
  const events = createEventStreams(ctx);
  const serveEcho = createEchoHandler(ctx, events);
  const serveForward = createForward(ctx);
  const upgrades = createUpgrades(ctx);
  const grpc = config.grpc ? createGrpc(ctx) : null;
  /**
   * Set when the listener is about to close (after --shutdown-delay). During the
   * delay, answers say Connection: close so clients that picked this replica per
   * connection (an L4 balancer, kube-proxy) move on; a trusted reverse proxy picks a
   * backend per request, so closing its pooled connections would only make it open
   * new ones, and a connection that reaches the listener as it closes is reset with
   * its request already sent. Its connections are closed with the drain instead.
   */
  let closing = false;

  function closeIfDraining(res: ServerResponse, facts: ConnectionFacts): void {
    if (health.draining && (closing || !config.trustedProxies.has(facts.peerAddress))) res.shouldKeepAlive = false;
  }

  /**
   * The handler. An unexpected error answers 500 (or drops the connection if the
   * answer had begun), is logged, and never takes the server down.
   */
  function handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void {
    // A gRPC call is its own protocol on the same stream: its adapter admits and records it.
    if (grpc !== null && isGrpcRequest(req)) {
      closeIfDraining(res, facts); // gRPC-Web over HTTP/1.1 moves on like any request
      return grpc.handle(req, res, facts);
    }
    const uri = req.url ?? '/';
    const q = uri.indexOf('?');
    const ops = routes.get(q < 0 ? uri : uri.slice(0, q));
    const x = ledger.begin(
      new HttpExchange(
        ledger,
        req,
        res,
        facts,
        scanHeaders(req.rawHeaders),
        ops === undefined || config.logOpsRequests,
      ),
      req.rawHeaders,
    );
    closeIfDraining(res, facts);
    serve(x, req, uri, q, ops, req.headers);
  }

  /** An HTTP/2 stream, answered on the stream API; a gRPC call by the gRPC adapter. */
  function stream(
    s: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: string[],
    facts: ConnectionFacts,
  ): void {
    const method = headers[':method'] ?? 'OTHER';
    if (method === 'CONNECT') {
      refuseStreamTunnel(ctx, s, headers, rawHeaders, facts);
      return;
    }
    // Before the handler, as node:http answers it on HTTP/1.1.
    if (headers.expect === '100-continue') s.additionalHeaders({ ':status': 100 });
    if (grpc !== null && grpcFlavour(headers['content-type']) !== null) {
      grpc.stream(s, headers, rawHeaders, facts);
      return;
    }
    const uri = headers[':path'] ?? '/';
    const q = uri.indexOf('?');
    const ops = routes.get(q < 0 ? uri : uri.slice(0, q));
    const x = ledger.begin(
      new H2Exchange(
        ledger,
        s,
        method,
        uri,
        rawHeaders,
        facts,
        scanHeaders(rawHeaders),
        ops === undefined || config.logOpsRequests,
      ),
      rawHeaders,
    );
    serve(x, x, uri, q, ops, headers);
  }

  /**
   * Admission, then the route: an operations endpoint, a gRPC-Web preflight (told
   * by the request's `headers`), the forward, or the echo.
   */
  function serve(
    x: HttpExchange | H2Exchange,
    head: RequestHead,
    uri: string,
    q: number,
    ops: ReturnType<typeof routes.get>,
    headers: IncomingHttpHeaders,
  ): void {
    try {
      const busy = ops === undefined ? ledger.overBudget(x) : null;
      if (busy !== null) {
        refuseOverBudget(ctx, x, busy);
        return;
      }
      const problem = admissionProblem(head, x.scan, config);
      if (problem !== null) {
        if (problem.limit !== undefined)
          ctx.log(
            'warn',
            { peer: x.facts.peerAddress, limit: problem.limit },
            'bad request: request header fields too large',
          );
        reject(x, problem.status, problem.reason);
      } else if (ops === undefined && grpc !== null && grpc.isPreflight(x.method, uri, headers)) {
        grpc.preflight(headers, x);
      } else if (ops === undefined && serveForward !== null && (q < 0 ? uri : uri.slice(0, q)) === FORWARD_PATH) {
        serveForward(x);
      } else if (ops === undefined) {
        serveEcho(x, q);
      } else {
        serveOps(x, ops);
      }
    } catch (err) {
      fail(ctx, x, err);
    }
    x.handlerReturned();
  }

  /**
   * Upgrades pass the same admission as any request, before any 101: a refused one
   * is served as a plain request, and refused there by the same rule.
   */
  function mayUpgrade(req: IncomingMessage, h2c: boolean, facts: ConnectionFacts): boolean {
    if (admissionProblem(req, scanHeaders(req.rawHeaders), config) !== null) return false;
    // A body declared over the limit is refused (413) as the same request's would be.
    if (declaredOverLimit(req.headers['content-length'], config.maxBodySize)) return false;
    return !h2c || (!health.draining && ledger.hasRoom(req.rawHeaders, facts));
  }

  return {
    handle,
    stream,
    mayUpgrade,
    switchingProtocols: rawSwitchingProtocols,
    upgrade: upgrades.upgrade,
    refuseTunnel: (req, socket, facts) => refuseTunnel(ctx, req, socket, facts),
    clientError: (code, current, peer) => parserRefusal(ctx, code, current, peer),
    boundPorts(ports) {
      for (const p of ports) ctx.ownPorts.add(p);
    },
    beginShutdown() {
      closing = true;
      health.beginDrain();
      events.endAll();
      grpc?.endAll();
      upgrades.closeAll();
    },
    health,
    idle: () => ledger.idle(),
    get inFlight() {
      return ledger.inFlight;
    },
  };
}

/** Over the in-flight budget: 503 on HTTP/1.x, REFUSED_STREAM on HTTP/2 (safe for the client to retry). */
function refuseOverBudget(ctx: HttpContext, x: HandlerExchange, busy: BudgetRefusal): void {
  if (busy.limit === '--max-in-flight-per-client')
    ctx.log(
      'warn',
      { client: x.client, limit: busy.limit },
      'request refused: the client holds its share of the in-flight budget',
    );
  if (x.refusable) {
    x.abort('refuse');
    return;
  }
  reject(x, 503, busy.reason, ['Retry-After', '1']);
}

/** CONNECT on HTTP/2 (its target is :authority): 405, as over HTTP/1.1, recorded by its stream's port. */
function refuseStreamTunnel(
  ctx: HttpContext,
  s: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
  facts: ConnectionFacts,
): void {
  const { ledger } = ctx;
  const x = ledger.begin(
    new H2Exchange(ledger, s, 'CONNECT', headers[':authority'] ?? '', rawHeaders, facts, scanHeaders(rawHeaders), true),
    rawHeaders,
  );
  try {
    x.stopReading(); // a tunnel's stream stays open for its data: CANCEL once the answer is out
    sendText(x, 405, TUNNEL_REFUSAL, TUNNEL_ALLOW);
  } catch (err) {
    fail(ctx, x, err);
  }
  x.handlerReturned();
}

/** CONNECT: 405, answered on the raw socket, which is closed after it. */
function refuseTunnel(ctx: HttpContext, req: IncomingMessage, socket: Duplex, facts: ConnectionFacts): void {
  const { ledger } = ctx;
  const x = ledger.begin(
    new Exchange('http/1.1', facts, req.method ?? 'OTHER', req.url ?? '/', scanHeaders(req.rawHeaders), true),
    req.rawHeaders,
  );
  socket.on('error', () => socket.destroy());
  const answer = rawAnswer(405, TUNNEL_REFUSAL, TUNNEL_ALLOW);
  socket.end(answer);
  answeredOnSocket(ledger, x, 405, Buffer.byteLength(TUNNEL_REFUSAL));
}

/** A request node:http's parser refused (or the front deadline cut): its status and raw answer, logged and recorded once. */
function parserRefusal(
  ctx: HttpContext,
  code: string | undefined,
  current: ServerResponse | null,
  peer: string,
): string {
  let status = 400;
  let reason = 'malformed request';
  if (code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    reason = 'request header fields too large (--max-header-size)';
  } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    reason = 'request not received in time (--headers-timeout, --request-timeout)';
  }
  ctx.log('warn', { peer, code, status }, `bad request: ${reason}`);
  // A request the app is answering is recorded by its exchange, with this status;
  // one it never saw is counted here.
  if (current !== null) answeredByTransport(current, status);
  else ctx.ledger.refusedByParser(status);
  return rawAnswer(status, `${reason}\n`);
}
