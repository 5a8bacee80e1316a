import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type {
  DescEnum,
  DescExtension,
  DescFile,
  DescMessage,
  DescService,
  MessageInitShape,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "@zero/proto/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@zero/proto/grpc/reflection/v1alpha/reflection_pb";

/** What reflection knows: the files of the served services and all their dependencies. */
export interface ReflectionIndex {
  serviceNames: string[];
  /** The file and its transitive dependencies, requested file first; undefined when unknown. */
  fileByName(name: string): Uint8Array[] | undefined;
  fileContainingSymbol(symbol: string): Uint8Array[] | undefined;
  fileContainingExtension(extendee: string, number: number): Uint8Array[] | undefined;
  extensionNumbersOf(message: string): number[] | undefined;
}

export function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const serialized = new Map<DescFile, Uint8Array>();

  const addExtension = (ext: DescExtension, file: DescFile): void => {
    symbols.set(ext.typeName, file);
    let byNumber = extensions.get(ext.extendee.typeName);
    if (byNumber === undefined)
      extensions.set(ext.extendee.typeName, (byNumber = new Map<number, DescFile>()));
    byNumber.set(ext.number, file);
  };
  const addEnum = (e: DescEnum, file: DescFile): void => {
    symbols.set(e.typeName, file);
  };
  const addMessage = (m: DescMessage, file: DescFile): void => {
    symbols.set(m.typeName, file);
    messages.add(m.typeName);
    m.nestedMessages.forEach((nested) => addMessage(nested, file));
    m.nestedEnums.forEach((nested) => addEnum(nested, file));
    m.nestedExtensions.forEach((nested) => addExtension(nested, file));
  };
  const addFile = (file: DescFile): void => {
    const name = file.proto.name;
    if (files.has(name)) return;
    files.set(name, file);
    file.dependencies.forEach(addFile);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
    file.messages.forEach((m) => addMessage(m, file));
    file.enums.forEach((e) => addEnum(e, file));
    file.extensions.forEach((ext) => addExtension(ext, file));
  };
  services.forEach((service) => addFile(service.file));

  const bytesOf = (file: DescFile): Uint8Array => {
    let bytes = serialized.get(file);
    if (bytes === undefined) serialized.set(file, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };

  // Clients such as grpcurl and buf curl resolve imports from the answer, so send them along.
  const withDependencies = (file: DescFile | undefined): Uint8Array[] | undefined => {
    if (file === undefined) return undefined;
    const seen = new Set<DescFile>();
    const visit = (f: DescFile): void => {
      if (seen.has(f)) return;
      seen.add(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return [file, ...[...seen].filter((f) => f !== file)].map(bytesOf);
  };

  return {
    serviceNames: [...new Set(services.map((s) => s.typeName))],
    fileByName: (name) => withDependencies(files.get(name)),
    fileContainingSymbol: (symbol) => withDependencies(symbols.get(symbol.replace(/^\./, ""))),
    fileContainingExtension: (extendee, number) =>
      withDependencies(extensions.get(extendee.replace(/^\./, ""))?.get(number)),
    extensionNumbersOf(message) {
      const name = message.replace(/^\./, "");
      if (!messages.has(name)) return undefined;
      return [...(extensions.get(name)?.keys() ?? [])].sort((a, b) => a - b);
    },
  };
}

type ResponseInit = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

function answer(index: ReflectionIndex, req: v1.ServerReflectionRequest): ResponseInit {
  const files = (what: string, found: Uint8Array[] | undefined): ResponseInit["messageResponse"] =>
    found === undefined
      ? { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } }
      : { case: "fileDescriptorResponse", value: { fileDescriptorProto: found } };

  const request = req.messageRequest;
  const asked =
    request.case === "fileContainingExtension" ? request.value.containingType : (request.value ?? "");
  if (typeof asked === "string" && asked.length > MAX_NAME_LENGTH) {
    return {
      validHost: "",
      messageResponse: {
        case: "errorResponse",
        value: {
          errorCode: Code.InvalidArgument,
          errorMessage: `names are at most ${MAX_NAME_LENGTH} characters`,
        },
      },
    };
  }
  let messageResponse: ResponseInit["messageResponse"];
  switch (request.case) {
    case "listServices":
      messageResponse = {
        case: "listServicesResponse",
        value: { service: index.serviceNames.map((name) => ({ name })) },
      };
      break;
    case "fileByFilename":
      messageResponse = files(`file "${request.value}"`, index.fileByName(request.value));
      break;
    case "fileContainingSymbol":
      messageResponse = files(`symbol "${request.value}"`, index.fileContainingSymbol(request.value));
      break;
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = request.value;
      messageResponse = files(
        `extension ${extensionNumber} of "${containingType}"`,
        index.fileContainingExtension(containingType, extensionNumber),
      );
      break;
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(request.value);
      messageResponse =
        numbers === undefined
          ? {
              case: "errorResponse",
              value: { errorCode: Code.NotFound, errorMessage: `message type "${request.value}" not found` },
            }
          : {
              case: "allExtensionNumbersResponse",
              value: { baseTypeName: request.value, extensionNumber: numbers },
            };
      break;
    }
    default:
      messageResponse = {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no question" },
      };
  }
  return { validHost: req.host, originalRequest: req, messageResponse };
}

export interface Reflection {
  /** The services reflection lists (and health answers for). */
  serviceNames: string[];
  v1: ServiceImpl<typeof v1.ServerReflection>;
  /** The pre-standard version that older grpcurl and many tools still ask first. */
  v1alpha: ServiceImpl<typeof v1alpha.ServerReflection>;
}

/**
 * A client needs a few dozen questions to describe an API (grpcurl asks a handful); a stream asking
 * thousands is using one call to make the server do unbounded work: it ends with RESOURCE_EXHAUSTED.
 */
const MAX_QUESTIONS_PER_STREAM = 1_000;

async function* bounded<T>(requests: AsyncIterable<T>): AsyncIterable<T> {
  let asked = 0;
  for await (const request of requests) {
    if (++asked > MAX_QUESTIONS_PER_STREAM)
      throw new ConnectError(
        `a reflection stream answers at most ${MAX_QUESTIONS_PER_STREAM} questions: open another`,
        Code.ResourceExhausted,
      );
    yield request;
  }
}

/** Names longer than any real one (fully-qualified protobuf names, file paths) are not looked up or echoed. */
const MAX_NAME_LENGTH = 512;

/** Server reflection v1 and v1alpha over the files of `services` (include health and reflection themselves). */
export function createReflection(services: readonly DescService[]): Reflection {
  const index = createReflectionIndex(services);
  return {
    serviceNames: index.serviceNames,
    v1: {
      async *serverReflectionInfo(requests) {
        for await (const req of bounded(requests))
          yield create(v1.ServerReflectionResponseSchema, answer(index, req));
      },
    },
    v1alpha: {
      // v1alpha is wire-identical to v1 (same fields and numbers): translate through the bytes.
      async *serverReflectionInfo(requests) {
        for await (const alphaReq of bounded(requests)) {
          const req = fromBinary(
            v1.ServerReflectionRequestSchema,
            toBinary(v1alpha.ServerReflectionRequestSchema, alphaReq),
          );
          const res = create(v1.ServerReflectionResponseSchema, answer(index, req));
          yield fromBinary(
            v1alpha.ServerReflectionResponseSchema,
            toBinary(v1.ServerReflectionResponseSchema, res),
          );
        }
      },
    },
  };
}
