import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import * as v1 from "@zero/proto/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@zero/proto/grpc/reflection/v1alpha/reflection_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/server.js";
import { startEchoTestServer } from "./fixtures/echo-server.js";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const buf = path.join(repoRoot, "node_modules/.bin/buf");

let server: Server;
let reflection: Client<typeof v1.ServerReflection>;

beforeAll(async () => {
  server = await startEchoTestServer();
  reflection = createClient(v1.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
});

afterAll(async () => {
  await server.close(2000);
});

async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
    cwd: repoRoot,
    timeout: 20_000,
  });
  return stdout;
}

async function ask(
  request: MessageInitShape<typeof v1.ServerReflectionRequestSchema>,
): Promise<v1.ServerReflectionResponse> {
  for await (const res of reflection.serverReflectionInfo(
    createAsyncIterable([create(v1.ServerReflectionRequestSchema, request)]),
  ))
    return res;
  throw new Error("no reflection answer");
}

function fileNames(res: v1.ServerReflectionResponse): string[] {
  if (res.messageResponse.case !== "fileDescriptorResponse")
    throw new Error(`expected files, got ${res.messageResponse.case}`);
  return res.messageResponse.value.fileDescriptorProto.map(
    (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
  );
}

describe("reflection through the buf CLI", () => {
  it("lists the API, health and reflection (v1)", async () => {
    const services = (await bufCurl("--list-services", server.url)).trim().split("\n").sort();
    expect(services).toEqual(
      [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "zero.testing.v1.EchoService",
      ].sort(),
    );
  });

  it("lists methods through v1alpha too", async () => {
    const methods = (await bufCurl("--reflect-protocol", "grpc-v1alpha", "--list-methods", server.url))
      .trim()
      .split("\n");
    expect(methods).toContain("zero.testing.v1.EchoService/Echo");
    expect(methods).toContain("grpc.health.v1.Health/Watch");
  });

  it("invokes an RPC described only by reflection", async () => {
    const out = await bufCurl("-d", '{"message":"hi"}', `${server.url}/zero.testing.v1.EchoService/Echo`);
    expect(JSON.parse(out)).toEqual({ message: "hi" });
    const healthOut = await bufCurl("-d", "{}", `${server.url}/grpc.health.v1.Health/Check`);
    expect(JSON.parse(healthOut)).toEqual({ status: "SERVING" });
  });
});

describe("reflection requests", () => {
  it("file_by_filename answers the file first, then its transitive dependencies", async () => {
    const names = fileNames(
      await ask({ messageRequest: { case: "fileByFilename", value: "zero/testing/v1/echo.proto" } }),
    );
    expect(names[0]).toBe("zero/testing/v1/echo.proto");
    expect(names).toEqual(
      expect.arrayContaining([
        "google/api/annotations.proto",
        "google/api/http.proto",
        "google/api/field_behavior.proto",
        "zero/options/v1/access.proto",
        "google/protobuf/descriptor.proto",
      ]),
    );
    expect(new Set(names).size).toBe(names.length);
  });

  it.each([
    ["a service", "zero.testing.v1.EchoService", "zero/testing/v1/echo.proto"],
    ["a method", "zero.testing.v1.EchoService.Echo", "zero/testing/v1/echo.proto"],
    ["a message", "zero.testing.v1.EchoRequest", "zero/testing/v1/echo.proto"],
    ["an enum", "zero.options.v1.Access", "zero/options/v1/access.proto"],
    ["a nested enum", "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    [
      "a nested message",
      "google.protobuf.DescriptorProto.ExtensionRange",
      "google/protobuf/descriptor.proto",
    ],
    ["nothing from files no service imports", "google.rpc.BadRequest.FieldViolation", undefined],
    ["an extension", "zero.options.v1.access", "zero/options/v1/access.proto"],
  ])("file_containing_symbol finds %s", async (_what, symbol, file) => {
    const res = await ask({ messageRequest: { case: "fileContainingSymbol", value: symbol } });
    if (file === undefined) {
      // google.rpc is not imported by any served service: reflection must not invent it.
      expect(res.messageResponse.case).toBe("errorResponse");
      return;
    }
    expect(fileNames(res)[0]).toBe(file);
  });

  it("file_containing_extension and all_extension_numbers_of_type", async () => {
    const ext = await ask({
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 50001 },
      },
    });
    expect(fileNames(ext)[0]).toBe("zero/options/v1/access.proto");

    const numbers = await ask({
      messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" },
    });
    expect(numbers.messageResponse.case).toBe("allExtensionNumbersResponse");
    if (numbers.messageResponse.case === "allExtensionNumbersResponse") {
      expect(numbers.messageResponse.value.baseTypeName).toBe("google.protobuf.MethodOptions");
      // google.api.http (72295728) and zero.options.v1.access/creates_resource.
      expect(numbers.messageResponse.value.extensionNumber).toEqual(
        expect.arrayContaining([50001, 50002, 72295728]),
      );
    }
  });

  it("answers NOT_FOUND for unknown names, and keeps the stream usable", async () => {
    const unknownSymbol = await ask({
      messageRequest: { case: "fileContainingSymbol", value: "zero.nope.v1.Nope" },
    });
    expect(unknownSymbol.messageResponse.case).toBe("errorResponse");
    if (unknownSymbol.messageResponse.case === "errorResponse") {
      expect(unknownSymbol.messageResponse.value.errorCode).toBe(Code.NotFound);
    }
    const unknownFile = await ask({ messageRequest: { case: "fileByFilename", value: "nope.proto" } });
    expect(unknownFile.messageResponse.case).toBe("errorResponse");
    const unknownType = await ask({
      messageRequest: { case: "allExtensionNumbersOfType", value: "zero.nope.v1.Nope" },
    });
    expect(unknownType.messageResponse.case).toBe("errorResponse");
  });

  it("v1alpha answers like v1", async () => {
    const alpha = createClient(v1alpha.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    const requests = createAsyncIterable([
      create(v1alpha.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }),
      create(v1alpha.ServerReflectionRequestSchema, {
        messageRequest: { case: "fileContainingSymbol", value: "zero.testing.v1.EchoService" },
      }),
    ]);
    const answers: v1alpha.ServerReflectionResponse[] = [];
    for await (const res of alpha.serverReflectionInfo(requests)) answers.push(res);
    expect(answers).toHaveLength(2);
    expect(answers[0]?.messageResponse.case).toBe("listServicesResponse");
    expect(answers[1]?.messageResponse.case).toBe("fileDescriptorResponse");
    expect(answers[1]?.originalRequest?.messageRequest.case).toBe("fileContainingSymbol");
  });
});

describe("limits", () => {
  it("does not look up or echo a name longer than any real one", async () => {
    const res = await ask({ messageRequest: { case: "fileContainingSymbol", value: "x".repeat(100_000) } });
    expect(res.messageResponse).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.InvalidArgument },
    });
    expect(toBinary(v1.ServerReflectionResponseSchema, res).length).toBeLessThan(1_000);
  });

  it("ends a stream that asks more than 1000 questions with resource_exhausted", async () => {
    const question = create(v1.ServerReflectionRequestSchema, {
      messageRequest: { case: "listServices", value: "" },
    });
    let answered = 0;
    const consume = async (): Promise<void> => {
      for await (const _ of reflection.serverReflectionInfo(
        createAsyncIterable(Array.from({ length: 1_001 }, () => question)),
      )) {
        void _;
        answered++;
      }
    };
    await expect(consume()).rejects.toMatchObject({ code: Code.ResourceExhausted });
    expect(answered).toBe(1_000);
  });
});
