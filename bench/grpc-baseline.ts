// The gRPC baseline of `npm run bench:grpc`: a plain @grpc/grpc-js server (what a
// user would run instead of echo-server's gRPC) answering echoserver.v1.Echo/Echo
// with the peer, the metadata and the payload, and echoserver.v1.Echo/ServerStream
// with `count` such messages `interval_ms` apart, the same generated messages.
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  EchoRequestSchema,
  EchoResponseSchema,
  ServerStreamRequestSchema,
  type EchoRequest,
  type EchoResponse,
  type ServerStreamRequest,
} from '../src/adapters/grpc/gen/echoserver/v1/echo_pb.js';

const port = Number(process.argv[2]);
const server = new grpc.Server();
const serialize = (m: EchoResponse) => Buffer.from(toBinary(EchoResponseSchema, m));
const deserialize = (b: Buffer) => fromBinary(EchoResponseSchema, b);
const method: grpc.MethodDefinition<EchoRequest, EchoResponse> = {
  path: '/echoserver.v1.Echo/Echo',
  requestStream: false,
  responseStream: false,
  requestSerialize: (m) => Buffer.from(toBinary(EchoRequestSchema, m)),
  requestDeserialize: (b) => fromBinary(EchoRequestSchema, b),
  responseSerialize: serialize,
  responseDeserialize: deserialize,
};
const stream: grpc.MethodDefinition<ServerStreamRequest, EchoResponse> = {
  path: '/echoserver.v1.Echo/ServerStream',
  requestStream: false,
  responseStream: true,
  requestSerialize: (m) => Buffer.from(toBinary(ServerStreamRequestSchema, m)),
  requestDeserialize: (b) => fromBinary(ServerStreamRequestSchema, b),
  responseSerialize: serialize,
  responseDeserialize: deserialize,
};

function answer(
  call: { getPeer(): string; metadata: grpc.Metadata },
  path: string,
  payload: Uint8Array,
  sequence: number,
): EchoResponse {
  const metadata = Object.entries(call.metadata.getMap()).map(([name, value]) => ({ name, value: String(value) }));
  return create(EchoResponseSchema, {
    remoteAddr: call.getPeer(),
    method: 'POST',
    requestUri: path,
    path,
    proto: 'HTTP/2.0',
    metadata,
    sequence: BigInt(sequence),
    payload: { bytes: BigInt(payload.length), data: payload },
  });
}

server.addService(
  { Echo: method, ServerStream: stream },
  {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, done: grpc.sendUnaryData<EchoResponse>) => {
      done(null, answer(call, method.path, call.request.payload, 0));
    },
    ServerStream: (call: grpc.ServerWritableStream<ServerStreamRequest, EchoResponse>) => {
      const { count, intervalMs, payload } = call.request;
      let n = 0;
      const next = () => {
        n++;
        call.write(answer(call, stream.path, payload, n));
        if (n >= count) call.end();
        else setTimeout(next, intervalMs);
      };
      next();
    },
  },
);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err !== null) throw err;
  console.log(`listening ${port}`);
});
