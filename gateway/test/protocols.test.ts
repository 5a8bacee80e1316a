import { execFile } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import {
  IssueServiceTokenRequestSchema,
  ServiceIdentityService,
} from "@zero/proto/zero/auth/v1/service_identity_pb";
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  FailRequestSchema,
  InternalEchoRequestSchema,
  UndecidedRequestSchema,
  WhoAmIRequestSchema,
} from "@zero/proto/zero/testing/v1/echo_pb";
import {
  GetBookRequestSchema,
  GetBookResponseSchema,
  TranscodingService,
  WatchBooksRequestSchema,
  WatchBooksResponseSchema,
} from "@zero/proto/zero/testing/v1/transcoding_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { rawRequest } from "./fixtures/raw-http.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// Every client protocol through the gateway's one port, each forwarded to the owning service, and
// the access policy applied identically whatever the protocol.

const logger = createLogger("gateway-protocols-test", { level: "silent" });

let tokens: TestTokens;
let echo: Server;
let gateway: Gateway;
let serviceToken: string;

beforeAll(async () => {
  tokens = await createTestTokens();
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    // ServiceIdentityService (ACCESS_SERVICE_CREDENTIALS) is listed so the gateway knows the
    // method, with an upstream nobody listens on: the refusal must come from the gateway.
    services: [EchoService, TranscodingService, ServiceIdentityService],
    upstreamUrls: { testing: echo.url, auth: "http://127.0.0.1:9" },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
  });
  // A valid service token: the echo service itself would accept it for InternalEcho.
  serviceToken = await tokens.sign({ sub: "service:payments", kind: "service", roles: ["service"] });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

const transports: [string, () => Transport][] = [
  ["Connect JSON over HTTP/1.1", () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
  [
    "Connect binary over HTTP/1.1",
    () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1", useBinaryFormat: true }),
  ],
  ["Connect JSON over h2c", () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" })],
  [
    "Connect binary over h2c",
    () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2", useBinaryFormat: true }),
  ],
  ["gRPC over h2c", () => createGrpcTransport({ baseUrl: gateway.url })],
  ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
  ["gRPC-Web over h2c", () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "2" })],
];

describe.each(transports)("%s through the gateway", (_name, makeTransport) => {
  let transcoding: Client<typeof TranscodingService>;
  let echoClient: Client<typeof EchoService>;
  beforeAll(() => {
    const transport = makeTransport();
    transcoding = createClient(TranscodingService, transport);
    echoClient = createClient(EchoService, transport);
  });

  it("calls a unary method", async () => {
    const answer = await transcoding.getBook({ name: "shelves/1/books/2" });
    expect(answer.book?.name).toBe("shelves/1/books/2");
  });

  it("streams a server-streaming method", async () => {
    const titles: string[] = [];
    for await (const item of transcoding.watchBooks({ count: 3, title: "W" }))
      titles.push(item.book?.title ?? "");
    expect(titles).toEqual(["W 0", "W 1", "W 2"]);
  });

  it("refuses INTERNAL, ACCESS_SERVICE_CREDENTIALS and undecided methods, even with a service token", async () => {
    const headers = { authorization: `Bearer ${serviceToken}` };
    const identity = createClient(ServiceIdentityService, makeTransport());
    for (const call of [
      () => echoClient.internalEcho({ message: "x" }, { headers }),
      () => echoClient.undecided({}, { headers }),
      () => identity.issueServiceToken({ clientId: "payments", clientSecret: "s" }, { headers }),
    ]) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(error?.code).toBe(Code.PermissionDenied);
    }
  });
});

describe("gRPC-Web text (base64) through the gateway", () => {
  it("translates a unary call both ways", async () => {
    const { status, contentType, frames, trailer } = await grpcWebText(
      "/zero.testing.v1.EchoService/Echo",
      toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "text mode" })),
    );
    expect(status).toBe(200);
    expect(contentType).toMatch(/^application\/grpc-web-text/);
    expect(frames.map((f) => fromBinary(EchoResponseSchema, f).message)).toEqual(["text mode"]);
    expect(trailer).toMatch(/grpc-status: ?0/);
  });

  it("streams, each chunk separately padded base64", async () => {
    const { frames, trailer } = await grpcWebText(
      "/zero.testing.v1.TranscodingService/WatchBooks",
      toBinary(WatchBooksRequestSchema, create(WatchBooksRequestSchema, { count: 4, title: "T" })),
    );
    expect(frames.map((f) => fromBinary(WatchBooksResponseSchema, f).index)).toEqual([0, 1, 2, 3]);
    expect(trailer).toMatch(/grpc-status: ?0/);
  });

  it("refuses an INTERNAL method in text form", async () => {
    const { trailer } = await grpcWebText(
      "/zero.testing.v1.EchoService/InternalEcho",
      toBinary(InternalEchoRequestSchema, create(InternalEchoRequestSchema, { message: "x" })),
      { authorization: `Bearer ${serviceToken}` },
    );
    expect(trailer).toMatch(/grpc-status: ?7/);
  });

  it("answers INVALID_ARGUMENT for a body that is not base64", async () => {
    const response = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text" },
      body: "not*base64!",
    });
    const { trailer } = decodeGrpcWebText(await response.text());
    expect(trailer).toMatch(/grpc-status: ?3/);
  });
});

describe("an independent gRPC client (@grpc/grpc-js) through the gateway", () => {
  let client: grpc.Client;
  beforeAll(() => {
    client = new grpc.Client(new URL(gateway.url).host, grpc.credentials.createInsecure());
  });
  afterAll(() => client?.close());

  const serializer =
    <D extends DescMessage>(schema: D) =>
    (message: MessageShape<D>): Buffer =>
      Buffer.from(toBinary(schema, message));
  const deserializer =
    <D extends DescMessage>(schema: D) =>
    (bytes: Buffer): MessageShape<D> =>
      fromBinary(schema, bytes);

  it("makes a unary call", async () => {
    const answer = await new Promise<MessageShape<typeof GetBookResponseSchema>>((resolve, reject) => {
      client.makeUnaryRequest(
        "/zero.testing.v1.TranscodingService/GetBook",
        serializer(GetBookRequestSchema),
        deserializer(GetBookResponseSchema),
        create(GetBookRequestSchema, { name: "shelves/5/books/6" }),
        (error, value) => (error || !value ? reject(error ?? new Error("no answer")) : resolve(value)),
      );
    });
    expect(answer.book?.name).toBe("shelves/5/books/6");
  });

  it("reads a server stream", async () => {
    const stream = client.makeServerStreamRequest(
      "/zero.testing.v1.TranscodingService/WatchBooks",
      serializer(WatchBooksRequestSchema),
      deserializer(WatchBooksResponseSchema),
      create(WatchBooksRequestSchema, { count: 2 }),
    );
    const indexes: number[] = [];
    for await (const item of stream as AsyncIterable<MessageShape<typeof WatchBooksResponseSchema>>) {
      indexes.push(item.index);
    }
    expect(indexes).toEqual([0, 1]);
  });

  it("is refused INTERNAL, ACCESS_SERVICE_CREDENTIALS and undecided methods with PERMISSION_DENIED", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${serviceToken}`);
    const calls: [string, DescMessage][] = [
      ["/zero.testing.v1.EchoService/InternalEcho", InternalEchoRequestSchema],
      ["/zero.testing.v1.EchoService/Undecided", UndecidedRequestSchema],
      ["/zero.auth.v1.ServiceIdentityService/IssueServiceToken", IssueServiceTokenRequestSchema],
    ];
    for (const [path, schema] of calls) {
      const code = await new Promise<number>((resolve) => {
        client.makeUnaryRequest(
          path,
          serializer(schema),
          (bytes: Buffer) => bytes,
          create(schema),
          metadata,
          (error) => resolve(error?.code ?? 0),
        );
      });
      expect(code).toBe(grpc.status.PERMISSION_DENIED);
    }
  });

  it("reads error messages as written, punctuation and non-ASCII included", async () => {
    // The gateway's own refusal (no token) and a service's error (echo's Fail) both cross as
    // grpc-message, which grpc-js decodes with decodeURI: ":" "," must not arrive as %3A, %2C.
    const details = (path: string, schema: DescMessage, message: Record<string, unknown>) =>
      new Promise<string>((resolve) => {
        client.makeUnaryRequest(
          path,
          serializer(schema),
          (bytes: Buffer) => bytes,
          create(schema, message),
          new grpc.Metadata(),
          (error) => resolve(error?.details ?? ""),
        );
      });
    const refused = await details("/zero.testing.v1.EchoService/WhoAmI", WhoAmIRequestSchema, {});
    expect(refused).toMatch(/^this call needs an access token: send `authorization: Bearer <token>`/);
    const failed = await details("/zero.testing.v1.EchoService/Fail", FailRequestSchema, {
      code: "not_found",
      message: "no such thing: ünïcode, 100% sure; a/b",
    });
    expect(failed).toBe("no such thing: ünïcode, 100% sure; a/b");
  });

  it("gets INVALID_ARGUMENT (not INTERNAL) for a message the service cannot decode", async () => {
    const code = await new Promise<number>((resolve) => {
      client.makeUnaryRequest(
        "/zero.testing.v1.EchoService/Echo",
        (bytes: Buffer) => bytes,
        (bytes: Buffer) => bytes,
        Buffer.from([0x0f, 0xff, 0xff]),
        (error) => resolve(error?.code ?? 0),
      );
    });
    expect(code).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe("a call the service refuses before reading its whole body", () => {
  it("leaves the HTTP/1.1 keep-alive connection usable for the next call", async () => {
    // A slow uplink: 2 MB (over the service's 1 MiB) in 64 KiB pieces, so the refusal arrives
    // while the body is still coming; the gateway must read the rest and drop it.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (chunks: Buffer[], gapMs: number) =>
      rawRequest(gateway.url, {
        method: "POST",
        path: "/zero.testing.v1.EchoService/Echo",
        headers: {
          "content-type": "application/json",
          "content-length": chunks.reduce((n, c) => n + c.length, 0),
        },
        body: chunks,
        gapMs,
        agent,
      });
    try {
      const big = Buffer.from(JSON.stringify({ message: "x".repeat(2_000_000) }));
      const pieces = Array.from({ length: Math.ceil(big.length / 65536) }, (_, i) =>
        big.subarray(i * 65536, (i + 1) * 65536),
      );
      const refused = await post(pieces, 5);
      expect(refused.status).toBe(429);
      const started = performance.now();
      const next = await post([Buffer.from('{"message":"next"}')], 0);
      expect({ status: next.status, port: next.localPort }).toEqual({ status: 200, port: refused.localPort });
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      agent.destroy();
    }
  });
});

describe("gRPC server reflection at the gateway (grpcurl and buf curl without --schema)", () => {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
  const bufCurl = async (...args: string[]): Promise<string> =>
    (
      await promisify(execFile)(
        path.join(repoRoot, "node_modules/.bin/buf"),
        ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
        { cwd: repoRoot, timeout: 20_000 },
      )
    ).stdout;

  it("lists the services the gateway routes, by v1 and v1alpha", async () => {
    const services = (await bufCurl("--list-services", gateway.url)).trim().split("\n").sort();
    expect(services).toEqual(
      [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "zero.auth.v1.ServiceIdentityService",
        "zero.testing.v1.EchoService",
        "zero.testing.v1.TranscodingService",
      ].sort(),
    );
    const methods = await bufCurl("--reflect-protocol", "grpc-v1alpha", "--list-methods", gateway.url);
    expect(methods).toContain("zero.testing.v1.EchoService/Echo");
  });

  it("lets a client call a method by the schema it reflected", async () => {
    const answer = await bufCurl(
      "-d",
      '{"message":"reflected"}',
      `${gateway.url}/zero.testing.v1.EchoService/Echo`,
    );
    expect(JSON.parse(answer)).toMatchObject({ message: "reflected" });
  });
});

describe("REST over HTTP/2 (h2c prior knowledge) on the same port", () => {
  it("serves a transcoded GET and refuses an INTERNAL route", async () => {
    const session = http2.connect(gateway.url);
    try {
      const get = (path: string, method = "GET") =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const stream = session.request(
            {
              ":method": method,
              ":path": path,
              "content-type": "application/json",
              authorization: `Bearer ${serviceToken}`,
            },
            { endStream: method === "GET" },
          );
          let status = 0;
          let body = "";
          stream.on("response", (h) => (status = Number(h[":status"])));
          stream.setEncoding("utf8");
          stream.on("data", (c: string) => (body += c));
          stream.on("end", () => resolve({ status, body }));
          stream.on("error", reject);
          if (method !== "GET") stream.end("{}");
        });
      const book = await get("/v1/transcoding/shelves/1/books/2");
      expect(book.status).toBe(200);
      expect(JSON.parse(book.body)).toMatchObject({ name: "shelves/1/books/2" });
      const internal = await get("/v1/echo/internal", "POST");
      expect(internal.status).toBe(403);
      expect(JSON.parse(internal.body)).toMatchObject({ error: { code: 403, status: "PERMISSION_DENIED" } });
    } finally {
      session.close();
    }
  });
});

function envelope(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

async function grpcWebText(
  path: string,
  message: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ status: number; contentType: string; frames: Uint8Array[]; trailer: string }> {
  const response = await fetch(gateway.url + path, {
    method: "POST",
    headers: { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text", ...headers },
    body: envelope(message).toString("base64"),
  });
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    ...decodeGrpcWebText(await response.text()),
  };
}

/** Base64 possibly made of separately padded chunks → gRPC-Web frames and the trailer text. */
function decodeGrpcWebText(text: string): { frames: Uint8Array[]; trailer: string } {
  const groups = text.match(/.{1,4}/g) ?? [];
  const bytes = Buffer.concat(groups.map((g) => Buffer.from(g, "base64")));
  const frames: Uint8Array[] = [];
  let trailer = "";
  for (let at = 0; at + 5 <= bytes.length;) {
    const flags = bytes[at]!;
    const length = bytes.readUInt32BE(at + 1);
    const data = bytes.subarray(at + 5, at + 5 + length);
    if (flags & 0x80) trailer = data.toString("utf8");
    else frames.push(data);
    at += 5 + length;
  }
  return { frames, trailer };
}
