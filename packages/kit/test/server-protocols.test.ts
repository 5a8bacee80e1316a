import http2 from "node:http2";
import net from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  EchoStreamRequestSchema,
  EchoStreamResponseSchema,
} from "@zero/proto/zero/testing/v1/echo_pb";
import type {
  EchoRequest,
  EchoResponse,
  EchoStreamRequest,
  EchoStreamResponse,
} from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HTTP2_PREFACE } from "../src/protocol-sniffer.js";
import { startServer } from "../src/server.js";
import type { Server } from "../src/server.js";
import { echoRoutes } from "./fixtures/echo-service.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer } from "./fixtures/tokens.js";

let server: Server;
const logs = captureLogs();

beforeAll(async () => {
  const issuer = await createTestIssuer();
  server = await startServer({
    name: "echo",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [EchoService],
    routes: echoRoutes,
    verifier: issuer.verifier,
    maxBodyBytes: 64 * 1024,
  });
});

afterAll(async () => {
  await server.close(2000);
});

const transports: [string, () => Transport][] = [
  ["Connect JSON over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  [
    "Connect binary over HTTP/1.1",
    () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }),
  ],
  ["Connect JSON over HTTP/2", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  [
    "Connect binary over HTTP/2",
    () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
  ],
  ["gRPC over HTTP/2", () => createGrpcTransport({ baseUrl: server.url })],
  ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  ["gRPC-Web over HTTP/2", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
];

describe.each(transports)("%s", (_name, transport) => {
  let client: Client<typeof EchoService>;
  beforeAll(() => {
    client = createClient(EchoService, transport());
  });

  it("answers a unary call", async () => {
    expect((await client.echo({ message: "hi" })).message).toBe("hi");
  });

  it("delivers strings as sent, a leading byte-order mark (U+FEFF) included", async () => {
    expect((await client.echo({ message: "\ufeffhi" })).message).toBe("\ufeffhi");
  });

  it("streams server messages", async () => {
    const received: number[] = [];
    for await (const res of client.echoStream({ message: "tick", count: 3 })) received.push(res.index);
    expect(received).toEqual([0, 1, 2]);
  });

  it("refuses an oversized message with resource_exhausted", async () => {
    const error = await client
      .echo({ message: "x".repeat(100 * 1024) })
      .catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    // The server is still fine afterwards.
    expect((await client.echo({ message: "after" })).message).toBe("after");
  });
});

describe("an independent @grpc/grpc-js client", () => {
  let client: grpc.Client;
  beforeAll(() => {
    client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => client.close());

  it("calls a unary method", async () => {
    const res = await new Promise<EchoResponse>((resolve, reject) => {
      client.makeUnaryRequest<EchoRequest, EchoResponse>(
        "/zero.testing.v1.EchoService/Echo",
        (req) => Buffer.from(toBinary(EchoRequestSchema, req)),
        (bytes) => fromBinary(EchoResponseSchema, bytes),
        create(EchoRequestSchema, { message: "from grpc-js" }),
        (error, value) =>
          error === null && value !== undefined ? resolve(value) : reject(error ?? new Error("no response")),
      );
    });
    expect(res.message).toBe("from grpc-js");
  });

  it("receives a server stream and the status of a failing call", async () => {
    const received = await new Promise<EchoStreamResponse[]>((resolve, reject) => {
      const out: EchoStreamResponse[] = [];
      const call = client.makeServerStreamRequest<EchoStreamRequest, EchoStreamResponse>(
        "/zero.testing.v1.EchoService/EchoStream",
        (req) => Buffer.from(toBinary(EchoStreamRequestSchema, req)),
        (bytes) => fromBinary(EchoStreamResponseSchema, bytes),
        create(EchoStreamRequestSchema, { message: "s", count: 4 }),
      );
      call.on("data", (msg: EchoStreamResponse) => out.push(msg));
      call.on("error", reject);
      call.on("end", () => resolve(out));
    });
    expect(received.map((r) => r.index)).toEqual([0, 1, 2, 3]);

    const status = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest<EchoRequest, EchoResponse>(
        "/zero.testing.v1.EchoService/WhoAmI",
        (req) => Buffer.from(toBinary(EchoRequestSchema, req)),
        (bytes) => fromBinary(EchoResponseSchema, bytes),
        create(EchoRequestSchema, {}),
        (error) => resolve(error as grpc.ServiceError),
      );
    });
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe("the connection sniffer", () => {
  it("serves an HTTP/2 client whose preface arrives a few bytes at a time", async () => {
    // A proxy that forwards the client's first bytes one by one with pauses in between.
    const open = new Set<net.Socket>();
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(server.port, "127.0.0.1");
      open.add(inbound).add(outbound);
      outbound.setNoDelay(true);
      let forwarded = 0;
      let queue = Promise.resolve();
      inbound.on("data", (chunk: Buffer) => {
        queue = queue.then(async () => {
          for (let i = 0; i < chunk.length; i++) {
            if (forwarded + i < HTTP2_PREFACE.length + 4) {
              outbound.write(chunk.subarray(i, i + 1));
              await new Promise((resolve) => setTimeout(resolve, 2));
            } else {
              outbound.write(chunk.subarray(i));
              break;
            }
          }
          forwarded += chunk.length;
        });
      });
      outbound.pipe(inbound);
      inbound.on("close", () => outbound.destroy());
      outbound.on("close", () => inbound.destroy());
      inbound.on("error", () => outbound.destroy());
      outbound.on("error", () => inbound.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    try {
      const client = createClient(
        EchoService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${proxyPort}` }),
      );
      expect((await client.echo({ message: "in pieces" })).message).toBe("in pieces");
    } finally {
      // The client keeps its HTTP/2 session open: end it, or the proxy never finishes closing.
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it("shrugs off connections that close before or during the preface", async () => {
    await new Promise<void>((resolve) => {
      const socket = net.connect(server.port, "127.0.0.1", () => socket.end());
      socket.on("close", () => resolve());
    });
    await new Promise<void>((resolve) => {
      const socket = net.connect(server.port, "127.0.0.1", () => {
        socket.write(HTTP2_PREFACE.subarray(0, 10));
        setTimeout(() => socket.destroy(), 20);
      });
      socket.on("close", () => resolve());
    });
    await new Promise<void>((resolve) => {
      const socket = net.connect(server.port, "127.0.0.1", () => socket.resetAndDestroy());
      socket.on("close", () => resolve());
      socket.on("error", () => undefined);
    });
    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    expect((await client.echo({ message: "still up" })).message).toBe("still up");
  });

  it("answers HTTP/2 GET /healthz and an HTTP/1.1 request for an unknown path with 404", async () => {
    const session = http2.connect(server.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ":path": "/healthz" });
        req.on("response", (headers) => resolve(Number(headers[":status"])));
        req.on("error", reject);
        req.resume();
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    expect((await fetch(`${server.url}/no/such/thing`)).status).toBe(404);
  });

  it("answers a request Node's HTTP parser refuses (unknown method) with a JSON 400, not a bare one", async () => {
    const { port } = new URL(server.url);
    const raw = await new Promise<string>((resolve, reject) => {
      let text = "";
      const socket = net.connect(Number(port), "127.0.0.1", () =>
        socket.write("FOO /zero.testing.v1.EchoService/Echo HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)) as {
      error: { code: number; status: string };
    };
    expect(body.error).toMatchObject({ code: 400, status: "INVALID_ARGUMENT" });
  });

  it("refuses an unknown JSON field with invalid_argument instead of dropping it", async () => {
    const res = await fetch(`${server.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "hi", roles: ["admin"] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain("roles");
  });
});

describe("logs", () => {
  it("write an access line per RPC with code and duration, and never the authorization header", async () => {
    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await client.echo({ message: "logged?" }, { headers: { authorization: "Bearer super-secret-token" } });
    await client
      .whoAmI({}, { headers: { authorization: "Bearer super-secret-token" } })
      .catch(() => undefined);
    const lines = logs.lines.filter((l) => l.msg === "rpc");
    expect(lines).toContainEqual(
      expect.objectContaining({
        rpc: "zero.testing.v1.EchoService/Echo",
        code: "ok",
        service: "kit-test",
        level: "debug",
      }),
    );
    expect(lines).toContainEqual(
      expect.objectContaining({ rpc: "zero.testing.v1.EchoService/WhoAmI", code: "unauthenticated" }),
    );
    const line = lines.find((l) => l.rpc === "zero.testing.v1.EchoService/Echo");
    expect(typeof line?.duration_ms).toBe("number");
    expect(logs.text()).not.toContain("super-secret-token");
    expect(logs.text()).not.toContain("logged?");
  });
});

describe("after all the calls above", () => {
  it("closes promptly: no HTTP/2 stream or connection was left hanging (oversized requests included)", async () => {
    const startedAt = Date.now();
    await server.close(5000);
    expect(Date.now() - startedAt).toBeLessThan(1000);
  });
});
