// The gRPC baseline of `npm run bench:grpc`: a plain @grpc/grpc-js server (what a
// user would run instead of echo-server's gRPC) answering echoserver.v1.Echo/Echo
// with the peer, the metadata and the payload, the same generated messages.
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  EchoRequestSchema,
  EchoResponseSchema,
  type EchoRequest,
  type EchoResponse,
} from '../src/adapters/grpc/gen/echoserver/v1/echo_pb.js';

const port = Number(process.argv[2]);
const server = new grpc.Server();
const method: grpc.MethodDefinition<EchoRequest, EchoResponse> = {
  path: '/echoserver.v1.Echo/Echo',
  requestStream: false,
  responseStream: false,
  requestSerialize: (m) => Buffer.from(toBinary(EchoRequestSchema, m)),
  requestDeserialize: (b) => fromBinary(EchoRequestSchema, b),
  responseSerialize: (m) => Buffer.from(toBinary(EchoResponseSchema, m)),
  responseDeserialize: (b) => fromBinary(EchoResponseSchema, b),
};
server.addService(
  { Echo: method },
  {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, done: grpc.sendUnaryData<EchoResponse>) => {
      const metadata = Object.entries(call.metadata.getMap()).map(([name, value]) => ({ name, value: String(value) }));
      done(
        null,
        create(EchoResponseSchema, {
          remoteAddr: call.getPeer(),
          method: 'POST',
          requestUri: method.path,
          path: method.path,
          proto: 'HTTP/2.0',
          metadata,
          payload: { bytes: BigInt(call.request.payload.length), data: call.request.payload },
        }),
      );
    },
  },
);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err !== null) throw err;
  console.log(`listening ${port}`);
});
