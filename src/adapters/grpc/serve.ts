// gRPC on the HTTP ports: a request whose content type is gRPC (on HTTP/2) or
// gRPC-Web (on any version) is a call. It is begun in the same Ledger and passes the
// same admission as any request (the in-flight budget and the client's share, head
// size and count, Expect), refused its own way (REFUSED_STREAM over the budget where
// HTTP/2 has it, a gRPC status otherwise), and recorded as a 'grpc' exchange whose
// outcome is its gRPC status: one access line (with grpcStatus) and one count.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { admissionProblem, declaredOverLimit } from '../../core/admission.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { scanHeaders } from '../../core/request-head.ts';
import { ControlError } from '../../controls/read.ts';
import { parseGrpcControls } from '../../controls/grpc.ts';
import { chooseValues } from '../../controls/table.ts';
import type { HttpContext } from '../../handlers/context.ts';
import { attemptControls } from '../../handlers/fail-first.ts';
import { sickAnswerOf } from '../../handlers/sick.ts';
import { clip } from '../../util/parse.ts';
import { Call } from './call.ts';
import { callCorsHeaders, isGrpcWebPreflight, preflightAnswer } from './cors.ts';
import type { HandlerExchange } from '../../handlers/exchange.ts';
import { sendText } from '../../handlers/answer.ts';
import { GrpcStreamExchange, GrpcWebExchange, type GrpcExchange } from './exchange.ts';
import { createMethods } from './services.ts';
import { Status, grpcFlavour, parseTimeout, type Flavour } from './wire.ts';

/** A request's header fields by lower-case name, as node:http and node:http2 give them. */
type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface Grpc {
  /** A gRPC-Web call over HTTP/1.1. */
  handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void;
  /** A call on an HTTP/2 stream (gRPC or gRPC-Web), answered on the stream API. */
  stream(s: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], facts: ConnectionFacts): void;
  /** Shutdown: streams that would go on (server streams, bidi, health Watch) end now, UNAVAILABLE. */
  endAll(): void;
  /** Whether an HTTP request is a browser's CORS preflight for a gRPC-Web call here. */
  isPreflight(method: string, url: string, headers: Headers): boolean;
  /** Answers that preflight (an HTTP exchange, admitted as any request). */
  preflight(headers: Headers, x: HandlerExchange): void;
}

/** Which gRPC an HTTP/1.x request is: gRPC-Web (gRPC itself needs HTTP/2); null when it is none. */
function webFlavourOf(req: IncomingMessage): Flavour | null {
  const flavour = grpcFlavour(req.headers['content-type']);
  return flavour === 'grpc' ? null : flavour;
}

/** Whether an HTTP/1.x request is a gRPC-Web call (HTTP/2 streams are told by app.stream). */
export function isGrpcRequest(req: IncomingMessage): boolean {
  return webFlavourOf(req) !== null;
}

/** An admission refusal's HTTP status as the gRPC status that says the same. */
function grpcStatusOf(httpStatus: number): number {
  if (httpStatus === 431 || httpStatus === 413) return Status.RESOURCE_EXHAUSTED;
  if (httpStatus === 417) return Status.FAILED_PRECONDITION;
  return Status.INVALID_ARGUMENT;
}

export function createGrpc(ctx: HttpContext): Grpc {
  const { config, ledger, health } = ctx;
  const sick = sickAnswerOf(config.sickAnswer);
  const methods = createMethods(ctx);
  /** The streams to end on shutdown (a call joins when it sets onShutdown). */
  const streams = new Set<Call>();

  /** Ends the call before it starts, with `code`; nothing of the request is read. */
  function refuse(x: GrpcExchange, code: number, message: string): void {
    // First: on HTTP/1.1 the head must say Connection: close, as the unread body
    // would otherwise be parsed as the connection's next request.
    x.stopReading();
    x.finish(code, message);
  }

  function handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void {
    const scan = scanHeaders(req.rawHeaders);
    const x = ledger.begin(new GrpcWebExchange(ledger, req, res, facts, scan, webFlavourOf(req)!), req.rawHeaders);
    admit(x, req.headers);
  }

  function stream(
    s: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: string[],
    facts: ConnectionFacts,
  ): void {
    const flavour = grpcFlavour(headers['content-type'])!;
    const scan = scanHeaders(rawHeaders);
    const method = headers[':method'] ?? 'OTHER';
    const x = new GrpcStreamExchange(ledger, s, method, headers[':path'] ?? '/', rawHeaders, facts, scan, flavour);
    admit(ledger.begin(x, rawHeaders), headers);
  }

  /** Admission, then the call: `x` was begun; `headers` are its request's fields. */
  function admit(x: GrpcExchange, headers: Headers): void {
    const { scan, facts } = x;
    // Before any refusal, so a page of an allowed origin can read it too.
    if (x.flavour !== 'grpc') x.cors = callCorsHeaders(x, config);
    try {
      const busy = ledger.overBudget(x);
      if (busy !== null) {
        if (busy.limit === '--max-in-flight-per-client')
          ctx.log(
            'warn',
            { client: x.client, limit: busy.limit },
            'request refused: the client holds its share of the in-flight budget',
          );
        if (x.refusable) x.abort('refuse');
        else refuse(x, Status.UNAVAILABLE, busy.reason);
        return;
      }
      const problem = admissionProblem(x, scan, config);
      if (problem !== null) {
        if (problem.limit !== undefined)
          ctx.log(
            'warn',
            { peer: facts.peerAddress, limit: problem.limit },
            'bad request: request header fields too large',
          );
        refuse(x, grpcStatusOf(problem.status), problem.reason);
        return;
      }
      // As an HTTP request's 413: a body declared over the limit is refused before any of
      // it arrives, rather than waited for until the request timeout.
      if (declaredOverLimit(headers['content-length'] as string | undefined, config.maxBodySize)) {
        refuse(
          x,
          Status.RESOURCE_EXHAUSTED,
          `request body declared larger than --max-body-size (${config.maxBodySize} bytes)`,
        );
        return;
      }
      const method = methods.get(x.target);
      if (x.method !== 'POST' || method === undefined) {
        refuse(
          x,
          Status.UNIMPLEMENTED,
          x.method !== 'POST' ? 'gRPC calls are POST requests' : `unknown method ${clip(x.target, 128)}`,
        );
        return;
      }
      const timeoutText = headers['grpc-timeout'] as string | undefined;
      const timeout = parseTimeout(timeoutText);
      if (timeout === undefined) {
        refuse(x, Status.INVALID_ARGUMENT, `malformed grpc-timeout "${clip(timeoutText!)}"`);
        return;
      }
      if (timeout === 0) {
        refuse(x, Status.DEADLINE_EXCEEDED, 'deadline exceeded (grpc-timeout)');
        return;
      }
      let controls;
      try {
        controls = parseGrpcControls(scan.controls, config.controls, config);
        if (controls !== null) chooseValues(controls, ctx.deps.random);
      } catch (err) {
        if (!(err instanceof ControlError)) throw err;
        refuse(x, err.status === 403 ? Status.PERMISSION_DENIED : Status.INVALID_ARGUMENT, err.message);
        return;
      }
      if (x.flavour !== 'grpc' && controls !== null && controls.headers.length > 0)
        x.cors = callCorsHeaders(
          x,
          config,
          controls.headers.map(([n]) => n),
        );
      if (controls?.size != null && controls.size > config.maxBodySize) {
        refuse(
          x,
          Status.RESOURCE_EXHAUSTED,
          `x-echo-size ${controls.size} is larger than a message may be (--max-body-size ${config.maxBodySize})`,
        );
        return;
      }
      // Aimed at the server, not the answer: set at once, as on HTTP.
      if (controls?.health != null) health.apply(controls.health);
      if (health.sick) {
        if (sick.fault !== null) x.fault(sick.fault);
        else refuse(x, Status.UNAVAILABLE, `this replica is sick (--sick-answer ${sick.status})`);
        return;
      }
      const call = new Call(
        ctx,
        x,
        controls === null ? null : attemptControls(ctx.attempts, controls, x.target),
        timeoutText ?? '',
        timeout ?? 0,
        streams,
      );
      call.start(method);
    } catch (err) {
      ctx.deps.logger.error({ err: (err as Error).message, reqId: x.requestId, uri: x.target }, 'gRPC call failed');
      if (!x.closed) refuse(x, Status.INTERNAL, 'internal error');
    }
  }

  return {
    handle,
    stream,
    isPreflight: (method, url, headers) => isGrpcWebPreflight(method, url, headers, methods),
    preflight(headers, x) {
      const answer = preflightAnswer(x, headers['access-control-request-method'] as string | undefined, config);
      if (answer.status === 204) x.head(204, answer.headers);
      else sendText(x, answer.status, answer.reason, answer.headers);
    },
    endAll() {
      for (const call of [...streams]) call.onShutdown?.();
    },
  };
}
