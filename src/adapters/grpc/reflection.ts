// Server reflection (grpc.reflection.v1 and v1alpha, the same messages under two
// names): the services here and their file descriptors, so grpcurl, ghz, Postman or
// grpc-js-reflection-client can call them with no .proto at hand. The descriptors
// are the ones the generated code embeds (from proto/), so they are what is served.
import { create, createRegistry, fromBinary, toBinary, type DescFile } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { Method } from './call.ts';
import { file_echoserver_v1_echo } from './gen/echoserver/v1/echo_pb.js';
import { file_grpc_health_v1_health } from './gen/grpc/health/v1/health_pb.js';
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  file_grpc_reflection_v1_reflection,
  type ServerReflectionResponse,
} from './gen/grpc/reflection/v1/reflection_pb.js';
import { file_grpc_reflection_v1alpha_reflection } from './gen/grpc/reflection/v1alpha/reflection_pb.js';
import { Status } from './wire.ts';

const FILES: readonly DescFile[] = [
  file_echoserver_v1_echo,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
];
const registry = createRegistry(...FILES);
/** Every service served, by its full name. */
export const SERVICE_NAMES: readonly string[] = FILES.flatMap((f) => f.services.map((s) => s.typeName));
/** A file's descriptor and those of its imports, as the bytes reflection sends. */
const encoded = new Map(FILES.map((f) => [f, toBinary(FileDescriptorProtoSchema, f.proto)]));

function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f)) return;
    seen.add(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return [...seen].map((f) => encoded.get(f) ?? toBinary(FileDescriptorProtoSchema, f.proto));
}

/** The file declaring a symbol: a message, enum, service, or a service's method. */
function fileOfSymbol(symbol: string): DescFile | undefined {
  const found = registry.get(symbol);
  if (found !== undefined) return found.file;
  const dot = symbol.lastIndexOf('.');
  if (dot < 0) return undefined;
  const service = registry.getService(symbol.slice(0, dot));
  return service?.methods.some((m) => m.name === symbol.slice(dot + 1)) === true ? service.file : undefined;
}

type Answer = ServerReflectionResponse['messageResponse'];

const notFound = (what: string): Answer => ({
  case: 'errorResponse',
  value: { $typeName: 'grpc.reflection.v1.ErrorResponse', errorCode: Status.NOT_FOUND, errorMessage: what },
});
const files = (file: DescFile | undefined, what: string): Answer =>
  file === undefined
    ? notFound(`${what} not found`)
    : {
        case: 'fileDescriptorResponse',
        value: { $typeName: 'grpc.reflection.v1.FileDescriptorResponse', fileDescriptorProto: withDependencies(file) },
      };

/** The one answer to one reflection request. */
export function reflect(bytes: Buffer): Uint8Array {
  const req = fromBinary(ServerReflectionRequestSchema, bytes, { readUnknownFields: false });
  const r = req.messageRequest;
  let answer: Answer;
  switch (r.case) {
    case 'listServices':
      answer = {
        case: 'listServicesResponse',
        value: {
          $typeName: 'grpc.reflection.v1.ListServiceResponse',
          service: SERVICE_NAMES.map((name) => ({ $typeName: 'grpc.reflection.v1.ServiceResponse', name })),
        },
      };
      break;
    case 'fileByFilename':
      answer = files(
        FILES.find((f) => f.proto.name === r.value),
        `file ${r.value.slice(0, 128)}`,
      );
      break;
    case 'fileContainingSymbol':
      answer = files(fileOfSymbol(r.value), `symbol ${r.value.slice(0, 128)}`);
      break;
    case 'allExtensionNumbersOfType':
      // No message here declares extension ranges: a known type has none, an unknown one is not found.
      answer =
        registry.getMessage(r.value) === undefined
          ? notFound(`type ${r.value.slice(0, 128)} not found`)
          : {
              case: 'allExtensionNumbersResponse',
              value: {
                $typeName: 'grpc.reflection.v1.ExtensionNumberResponse',
                baseTypeName: r.value,
                extensionNumber: [],
              },
            };
      break;
    case 'fileContainingExtension':
      answer = notFound('no extensions are declared here');
      break;
    default:
      answer = {
        case: 'errorResponse',
        value: {
          $typeName: 'grpc.reflection.v1.ErrorResponse',
          errorCode: Status.INVALID_ARGUMENT,
          errorMessage: 'empty reflection request',
        },
      };
  }
  return toBinary(
    ServerReflectionResponseSchema,
    create(ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer }),
  );
}

/** ServerReflectionInfo: each request answered as it arrives, until the client ends its side. */
export const reflectionInfo: Method = {
  kind: 'bidi',
  run(call) {
    call.onMessage = (bytes) => {
      let answer: Uint8Array;
      try {
        answer = reflect(bytes);
      } catch (err) {
        call.finish(Status.INVALID_ARGUMENT, `malformed ServerReflectionRequest: ${(err as Error).message}`);
        return;
      }
      if (!call.send(answer)) {
        call.x.body.pause();
        call.x.onDrain(() => call.x.body.resume());
      }
    };
    call.onHalfClose = () => call.finish(Status.OK);
  },
};
