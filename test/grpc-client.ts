// The independent gRPC client of the tests: @grpc/grpc-js (what Node services call
// gRPC with), given the server's generated message code for (de)serializing only.
import * as grpc from '@grpc/grpc-js';
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import {
  EchoRequestSchema,
  EchoResponseSchema,
  ForwardRequestSchema,
  ForwardResponseSchema,
  ServerStreamRequestSchema,
  type EchoResponse,
  type ForwardResponse,
} from '../src/adapters/grpc/gen/echoserver/v1/echo_pb.js';
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  type HealthCheckResponse,
} from '../src/adapters/grpc/gen/grpc/health/v1/health_pb.js';

export { grpc };

const ser =
  <D extends DescMessage>(schema: D) =>
  (m: MessageShape<D>) =>
    Buffer.from(toBinary(schema, m));
const de =
  <D extends DescMessage>(schema: D) =>
  (b: Buffer) =>
    fromBinary(schema, b);

export interface CallOptions {
  metadata?: Record<string, string | Buffer | (string | Buffer)[]>;
  /** Milliseconds from now. */
  deadlineMs?: number;
  /** Cancels the call (RST_STREAM CANCEL) when it aborts. */
  signal?: AbortSignal;
}

function metadataOf(opts: CallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts.metadata ?? {}))
    for (const one of Array.isArray(v) ? v : [v]) md.add(k, one);
  return md;
}

function callOptions(opts: CallOptions): grpc.CallOptions {
  return opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs };
}

/** What a unary call ended with: the response, or the error (code, details), and the trailers. */
export interface UnaryResult<T> {
  response: T | null;
  error: grpc.ServiceError | null;
  headers: grpc.Metadata | null;
  /** The trailing metadata (grpc-status and grpc-message are not in it). */
  trailers: grpc.Metadata | null;
}

export class EchoClient {
  readonly client: grpc.Client;

  constructor(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}) {
    this.client = new grpc.Client(target, credentials, options);
  }

  close(): void {
    this.client.close();
  }

  #unary<I extends DescMessage, O extends DescMessage>(
    path: string,
    inSchema: I,
    outSchema: O,
    message: MessageInitShape<I>,
    opts: CallOptions,
  ): Promise<UnaryResult<MessageShape<O>>> {
    return new Promise((resolve) => {
      let headers: grpc.Metadata | null = null;
      let result: Omit<UnaryResult<MessageShape<O>>, 'trailers'> | null = null;
      let trailers: grpc.Metadata | null | undefined;
      // The callback and the status (with the trailers) come in either order.
      const done = () => {
        if (result !== null && trailers !== undefined) resolve({ ...result, trailers });
      };
      const call = this.client.makeUnaryRequest(
        path,
        ser(inSchema),
        de(outSchema),
        create(inSchema, message),
        metadataOf(opts),
        callOptions(opts),
        (error, response) => {
          result = { response: response ?? null, error: error ?? null, headers };
          done();
        },
      );
      call.on('metadata', (md) => {
        headers = md;
      });
      call.on('status', (s) => {
        trailers = s.metadata;
        done();
      });
      opts.signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });
  }

  echo(payload: Uint8Array = new Uint8Array(), opts: CallOptions = {}): Promise<UnaryResult<EchoResponse>> {
    return this.#unary('/echoserver.v1.Echo/Echo', EchoRequestSchema, EchoResponseSchema, { payload }, opts);
  }

  forward(
    request: MessageInitShape<typeof ForwardRequestSchema>,
    opts: CallOptions = {},
  ): Promise<UnaryResult<ForwardResponse>> {
    return this.#unary('/echoserver.v1.Echo/Forward', ForwardRequestSchema, ForwardResponseSchema, request, opts);
  }

  check(service = '', opts: CallOptions = {}): Promise<UnaryResult<HealthCheckResponse>> {
    return this.#unary(
      '/grpc.health.v1.Health/Check',
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      { service },
      opts,
    );
  }

  /** A unary call to any path, with raw bytes as the message. */
  raw(path: string, message: Buffer, opts: CallOptions = {}): Promise<UnaryResult<Buffer>> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        message,
        metadataOf(opts),
        callOptions(opts),
        (error, response) =>
          resolve({ response: response ?? null, error: error ?? null, headers: null, trailers: null }),
      );
    });
  }

  serverStream(
    request: MessageInitShape<typeof ServerStreamRequestSchema>,
    opts: CallOptions = {},
  ): grpc.ClientReadableStream<EchoResponse> {
    return this.client.makeServerStreamRequest(
      '/echoserver.v1.Echo/ServerStream',
      ser(ServerStreamRequestSchema),
      de(EchoResponseSchema),
      create(ServerStreamRequestSchema, request),
      metadataOf(opts),
      callOptions(opts),
    );
  }

  watch(service = '', opts: CallOptions = {}): grpc.ClientReadableStream<HealthCheckResponse> {
    return this.client.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      ser(HealthCheckRequestSchema),
      de(HealthCheckResponseSchema),
      create(HealthCheckRequestSchema, { service }),
      metadataOf(opts),
      callOptions(opts),
    );
  }

  /** Sends each payload, half-closes, resolves with the one response. */
  clientStream(payloads: Uint8Array[], opts: CallOptions = {}): Promise<UnaryResult<EchoResponse>> {
    return new Promise((resolve) => {
      const call = this.client.makeClientStreamRequest(
        '/echoserver.v1.Echo/ClientStream',
        ser(EchoRequestSchema),
        de(EchoResponseSchema),
        metadataOf(opts),
        callOptions(opts),
        (error, response) =>
          resolve({ response: response ?? null, error: error ?? null, headers: null, trailers: null }),
      );
      for (const payload of payloads) call.write(create(EchoRequestSchema, { payload }));
      call.end();
    });
  }

  bidi(
    opts: CallOptions = {},
  ): grpc.ClientDuplexStream<ReturnType<typeof create<typeof EchoRequestSchema>>, EchoResponse> {
    return this.client.makeBidiStreamRequest(
      '/echoserver.v1.Echo/Bidi',
      ser(EchoRequestSchema),
      de(EchoResponseSchema),
      metadataOf(opts),
      callOptions(opts),
    );
  }
}

/** Every message of a server stream, and how it ended. */
export function collect<T>(
  stream: grpc.ClientReadableStream<T>,
): Promise<{ messages: T[]; status: grpc.StatusObject | null; error: grpc.ServiceError | null }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    let error: grpc.ServiceError | null = null;
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', (e: grpc.ServiceError) => {
      error = e;
    });
    stream.on('status', (status: grpc.StatusObject) => resolve({ messages, status, error }));
  });
}

export { EchoRequestSchema, create };
