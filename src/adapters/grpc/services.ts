// The services a gRPC client finds here, by method path: echoserver.v1.Echo (the
// record of the call, unary and in the three streaming kinds, bounded like the event
// stream), grpc.health.v1.Health (the server's readiness, as Kubernetes' grpc
// probes and grpc_health_probe ask it) and server reflection (reflection.ts).
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { HttpContext } from '../../handlers/context.ts';
import type { Call, Method } from './call.ts';
import {
  EchoRequestSchema,
  ForwardCallSchema,
  ForwardRequestSchema,
  ForwardResponseSchema,
  ServerStreamRequestSchema,
  TraceSchema,
} from './gen/echoserver/v1/echo_pb.js';
import { admitForward, isForwardRefusal, planForward, runForward, type ForwardCall } from '../../handlers/forward.ts';
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Serving,
} from './gen/grpc/health/v1/health_pb.js';
import { SERVICE_NAMES, reflectionInfo } from './reflection.ts';
import { Status } from './wire.ts';
/** The health service name that asks for liveness rather than readiness. */
export const LIVENESS = 'liveness';

/** How often a health Watch looks at the state again. */
const WATCH_POLL_MS = 1000;
/** The fastest a server stream may send (its interval_ms is raised to this). */
const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 60_000;

/** A request message decoded, or the call ended with INVALID_ARGUMENT and null returned. */
function decode<D extends DescMessage>(call: Call, schema: D, bytes: Buffer): MessageShape<D> | null {
  try {
    // Unknown fields are skipped, not kept: keeping them costs an allocation per field, and a
    // message of millions of tiny unknown fields would hold the event loop and memory for seconds.
    return fromBinary(schema, bytes, { readUnknownFields: false });
  } catch (err) {
    call.finish(Status.INVALID_ARGUMENT, `malformed ${schema.typeName}: ${(err as Error).message}`);
    return null;
  }
}

/**
 * EchoRequest's payload, for the echo methods. The form every encoder writes for it
 * (nothing, or field 1's tag, its length, and the bytes to the end) is read here as
 * a view of the message; anything else (unknown fields, a repeated field 1, a
 * padded length...) goes through the generated schema. Null: the call is ended.
 */
function echoPayload(call: Call, bytes: Buffer): Buffer | null {
  if (bytes.length === 0) return bytes;
  if (bytes[0] === 0x0a) {
    let length = 0;
    for (let i = 1, shift = 1; i < bytes.length && i <= 4; i++, shift *= 0x80) {
      const b = bytes[i]!;
      length += (b & 0x7f) * shift;
      if (b < 0x80) {
        if (i + 1 + length === bytes.length) return bytes.subarray(i + 1);
        break;
      }
    }
  }
  const req = decode(call, EchoRequestSchema, bytes);
  return req === null ? null : Buffer.from(req.payload);
}

/** Sends a framed message, pausing the request side while the peer is behind (bidi backpressure). */
function sendPaced(call: Call, framed: Buffer): void {
  if (call.sendFrame(framed)) return;
  call.x.body.pause();
  call.x.onDrain(() => call.x.body.resume());
}

/** The HTTP status of a forward refusal as a gRPC status. */
const FORWARD_STATUS: Record<number, number> = {
  400: Status.INVALID_ARGUMENT,
  403: Status.PERMISSION_DENIED,
  502: Status.UNAVAILABLE,
  503: Status.RESOURCE_EXHAUSTED,
};

function forwardCall(c: ForwardCall) {
  const echo = c.echo as {
    trace?: { traceId?: unknown; parentId?: unknown; sampled?: unknown; source?: unknown };
  } | null;
  const t = echo?.trace;
  return create(ForwardCallSchema, {
    n: c.n,
    url: c.url,
    status: typeof c.status === 'number' ? c.status : 0,
    ok: c.ok,
    protocol: c.protocol,
    latencyMs: c.latencyMs,
    error: c.error ?? '',
    replica: c.replica ?? '',
    spanId: c.spanId,
    echoJson: echo === null ? '' : JSON.stringify(echo),
    ...(t && typeof t.traceId === 'string'
      ? {
          trace: create(TraceSchema, {
            traceId: t.traceId,
            parentId: typeof t.parentId === 'string' ? t.parentId : '',
            ...(typeof t.sampled === 'boolean' ? { sampled: t.sampled } : {}),
            source: typeof t.source === 'string' ? t.source : '',
          }),
        }
      : {}),
  });
}

export function createMethods(ctx: HttpContext): Map<string, Method> {
  const { config, health } = ctx;
  const methods = new Map<string, Method>();

  methods.set('/echoserver.v1.Echo/Echo', {
    kind: 'unary',
    run(call, bytes) {
      const payload = echoPayload(call, bytes!);
      if (payload === null) return;
      call.answer(() => {
        call.sendFrame(call.echo(payload));
        call.finish(Status.OK);
      });
    },
  });

  methods.set('/echoserver.v1.Echo/ServerStream', {
    kind: 'server',
    run(call, bytes) {
      const req = decode(call, ServerStreamRequestSchema, bytes!);
      if (req === null) return;
      // Bounded like the event stream: at most --sse-count messages (at least one).
      const cap = Math.max(1, config.sseCount);
      const count = req.count === 0 ? cap : Math.min(req.count, cap);
      const interval = Math.min(
        MAX_INTERVAL_MS,
        Math.max(MIN_INTERVAL_MS, req.intervalMs === 0 ? config.sseIntervalMs : req.intervalMs),
      );
      const payload = Buffer.from(req.payload);
      call.onShutdown = () => call.finish(Status.UNAVAILABLE, 'server shutting down');
      call.answer(() => {
        let n = 0;
        const next = () => {
          n++;
          const more = call.sendFrame(call.echo(payload, n));
          if (n >= count) call.finish(Status.OK);
          else if (more) call.after(interval, next);
          else call.x.onDrain(() => call.after(interval, next));
        };
        next();
      });
    },
  });

  methods.set('/echoserver.v1.Echo/ClientStream', {
    kind: 'client',
    run(call) {
      let last = Buffer.alloc(0);
      call.onMessage = (bytes) => {
        const payload = echoPayload(call, bytes);
        if (payload !== null) last = Buffer.from(payload); // held to the end: its own copy, not a view of the chunk
      };
      call.onHalfClose = () =>
        call.answer(() => {
          call.sendFrame(call.echo(last));
          call.finish(Status.OK);
        });
    },
  });

  methods.set('/echoserver.v1.Echo/Bidi', {
    kind: 'bidi',
    run(call) {
      let n = 0;
      call.onShutdown = () => call.finish(Status.UNAVAILABLE, 'server shutting down');
      call.onMessage = (bytes) => {
        const payload = echoPayload(call, bytes);
        if (payload === null) return;
        const sequence = ++n;
        // A delayed echo waits on a timer: reading waits with it, so a client cannot
        // pile up timers faster than they fire (a chunk already read is the most).
        const delayed = (call.controls?.delayMs ?? 0) > 0;
        if (delayed) call.x.body.pause();
        call.answer(() => {
          sendPaced(call, call.echo(payload, sequence));
          if (delayed && !call.x.needsDrain) call.x.body.resume();
        });
      };
      call.onHalfClose = () => {
        // After the last echo: a delayed one is still on its timer.
        const delay = call.controls?.delayMs ?? 0;
        if (delay > 0) call.after(delay + 1, () => call.finish(Status.OK));
        else call.finish(Status.OK);
      };
    },
  });

  methods.set('/echoserver.v1.Echo/Forward', {
    kind: 'unary',
    run(call, bytes) {
      const req = decode(call, ForwardRequestSchema, bytes!);
      if (req === null) return;
      // Off means refused here (a gRPC method cannot fall back to being echoed).
      if (config.forwardAllow.length === 0) {
        call.finish(Status.FAILED_PRECONDITION, 'forwarding is off: --forward-allow is empty');
        return;
      }
      const refuse = (r: { status: number; why: string }) =>
        call.finish(FORWARD_STATUS[r.status] ?? Status.INTERNAL, r.why);
      const plan = planForward(ctx, {
        url: req.url,
        count: req.count === 0 ? null : String(req.count),
        qps: req.qps === 0 ? null : String(req.qps),
      });
      if (isForwardRefusal(plan)) return refuse(plan);
      const release = admitForward(ctx);
      if (typeof release !== 'function') return refuse(release);
      // Cancelled or past its deadline: the run stops, and gives its place back once stopped.
      const ended = new AbortController();
      call.whenEnded(() => ended.abort());
      runForward(ctx, plan, { rawHeaders: call.x.rawHeaders, requestId: call.x.requestId, signal: ended.signal })
        .then((answer) => {
          if (isForwardRefusal(answer)) return refuse(answer);
          const response = create(ForwardResponseSchema, {
            server: answer.server?.hostname ?? '',
            traceId: answer.traceId,
            requestId: answer.requestId,
            calls: answer.calls.map(forwardCall),
            ok: answer.summary.ok,
            failed: answer.summary.failed,
          });
          call.send(toBinary(ForwardResponseSchema, response));
          call.finish(Status.OK);
        })
        .catch((err: unknown) => call.finish(Status.INTERNAL, (err as Error).message))
        .finally(release);
    },
  });

  const known = (service: string) => service === '' || service === LIVENESS || SERVICE_NAMES.includes(service);
  const servingNow = (service: string) => (service === LIVENESS ? health.checkLive() : health.checkReady());
  const healthAnswer = (status: Serving) =>
    toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status }));

  methods.set('/grpc.health.v1.Health/Check', {
    kind: 'unary',
    run(call, bytes) {
      const req = decode(call, HealthCheckRequestSchema, bytes!);
      if (req === null) return;
      if (!known(req.service)) {
        call.finish(Status.NOT_FOUND, `unknown service ${req.service.slice(0, 64)}`);
        return;
      }
      call.send(healthAnswer(servingNow(req.service) ? Serving.SERVING : Serving.NOT_SERVING));
      call.finish(Status.OK);
    },
  });

  methods.set('/grpc.health.v1.Health/Watch', {
    kind: 'server',
    run(call, bytes) {
      const req = decode(call, HealthCheckRequestSchema, bytes!);
      if (req === null) return;
      // Readiness as it stands (nothing consumed: a one-shot failure is the probes').
      const state = () =>
        !known(req.service) ? Serving.SERVICE_UNKNOWN : health.ready ? Serving.SERVING : Serving.NOT_SERVING;
      let sent = state();
      call.send(healthAnswer(sent));
      const poll = () => {
        const now = state();
        if (now !== sent) {
          sent = now;
          call.send(healthAnswer(now));
        }
        call.after(WATCH_POLL_MS, poll);
      };
      call.after(WATCH_POLL_MS, poll);
      call.onShutdown = () => {
        if (sent !== Serving.NOT_SERVING && sent !== Serving.SERVICE_UNKNOWN)
          call.send(healthAnswer(Serving.NOT_SERVING));
        call.finish(Status.UNAVAILABLE, 'server shutting down');
      };
    },
  });

  methods.set('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', reflectionInfo);
  methods.set('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', reflectionInfo);
  return methods;
}
