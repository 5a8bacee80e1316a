import http2 from "node:http2";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { rawRequest } from "./fixtures/raw-http.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

const logger = createLogger("gateway-test", { level: "silent" });

let tokens: TestTokens;
let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  tokens = await createTestTokens();
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

interface ErrorBody {
  error: {
    code: number;
    status: string;
    message: string;
    details: { "@type": string; [k: string]: unknown }[];
  };
}

async function rest(
  method: string,
  path: string,
  init: { body?: string; headers?: Record<string, string> } = {},
) {
  const response = await fetch(gateway.url + path, {
    method,
    headers: init.body === undefined ? init.headers : { "content-type": "application/json", ...init.headers },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: text === "" ? undefined : (JSON.parse(text) as unknown),
  };
}

function expectErrorShape(json: unknown, code: number, status: string): ErrorBody["error"] {
  const body = json as ErrorBody;
  expect(body.error).toMatchObject({ code, status });
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(Array.isArray(body.error.details)).toBe(true);
  return body.error;
}

function violationsOf(error: ErrorBody["error"]): unknown[] {
  const badRequest = error.details.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
  return (badRequest?.["fieldViolations"] as unknown[] | undefined) ?? [];
}

describe("REST transcoding", () => {
  it("POST /v1/echo answers 200 JSON", async () => {
    const response = await rest("POST", "/v1/echo", { body: JSON.stringify({ message: "hi" }) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.json).toEqual({ message: "hi" });
    expect(response.headers.get("x-request-id")).toMatch(/^[\w-]+$/);
  });

  it("echoes a caller's x-request-id", async () => {
    const response = await rest("POST", "/v1/echo", {
      body: '{"message":"x"}',
      headers: { "x-request-id": "req-123" },
    });
    expect(response.headers.get("x-request-id")).toBe("req-123");
  });

  it("serves REST over HTTP/2 (h2c prior knowledge) on the same port", async () => {
    const session = http2.connect(gateway.url);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/v1/echo",
          "content-type": "application/json",
        });
        let status = 0;
        let body = "";
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => (body += chunk));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
        stream.end(JSON.stringify({ message: "over h2" }));
      });
      expect(status).toBe(200);
      expect(JSON.parse(body)).toEqual({ message: "over h2" });
    } finally {
      session.close();
    }
  });

  it("streams a server-streaming RPC as NDJSON, and as SSE on request", async () => {
    const ndjson = await fetch(`${gateway.url}/v1/echo/stream?message=m&count=3`);
    expect(ndjson.status).toBe(200);
    expect(ndjson.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    const lines = (await ndjson.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    expect(lines).toEqual([
      { message: "m", index: 0 },
      { message: "m", index: 1 },
      { message: "m", index: 2 },
    ]);
    const sse = await fetch(`${gateway.url}/v1/echo/stream?message=m&count=2`, {
      headers: { accept: "text/event-stream" },
    });
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(await sse.text()).toBe('data: {"message":"m","index":0}\n\ndata: {"message":"m","index":1}\n\n');
  });

  it("malformed JSON → 400", async () => {
    const response = await rest("POST", "/v1/echo", { body: '{"message": "hi"' });
    expect(response.status).toBe(400);
    const error = expectErrorShape(response.json, 400, "INVALID_ARGUMENT");
    expect(error.message).toMatch(/not valid JSON/);
  });

  it("unknown JSON field → 400 naming it", async () => {
    const response = await rest("POST", "/v1/echo", {
      body: JSON.stringify({ message: "hi", colour: "red" }),
    });
    const error = expectErrorShape(response.json, 400, "INVALID_ARGUMENT");
    expect(violationsOf(error)).toEqual([{ field: "colour", description: "unknown field" }]);
  });

  it("missing REQUIRED field → 400 with a violation", async () => {
    const response = await rest("POST", "/v1/echo", { body: "{}" });
    const error = expectErrorShape(response.json, 400, "INVALID_ARGUMENT");
    expect(violationsOf(error)).toEqual([{ field: "message", description: "required field is missing" }]);
  });

  it("unknown query parameter → 400", async () => {
    const response = await rest("GET", "/v1/echo/stream?message=m&nope=1");
    const error = expectErrorShape(response.json, 400, "INVALID_ARGUMENT");
    expect(violationsOf(error)).toEqual([{ field: "nope", description: "unknown query parameter" }]);
  });

  it("wrong method → 405 with Allow", async () => {
    const response = await rest("GET", "/v1/echo");
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expectErrorShape(response.json, 405, "UNIMPLEMENTED");
  });

  it("unknown route → 404", async () => {
    const response = await rest("GET", "/v1/nothing/here");
    expectErrorShape(response.json, 404, "NOT_FOUND");
    expect(response.status).toBe(404);
  });

  it("refuses a malformed client timeout with 400, over REST and Connect alike", async () => {
    const rest = await fetch(`${gateway.url}/v1/echo`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "abc" },
      body: '{"message":"x"}',
    });
    expect(rest.status).toBe(400);
    expect(await rest.text()).toMatch(/connect-timeout-ms must be whole milliseconds/);
    const connect = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json", "grpc-timeout": "soon" },
      body: '{"message":"x"}',
    });
    expect(connect.status).toBe(400);
    expect(((await connect.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("takes an absolute-form request target, as HTTP/1.1 servers must", async () => {
    const answer = await rawRequest(gateway.url, {
      method: "POST",
      path: `${gateway.url}/v1/echo`,
      headers: { "content-type": "application/json" },
      body: '{"message":"absolute"}',
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ message: "absolute" });
  });

  it("a 2 MB body → 413", async () => {
    const big = JSON.stringify({ message: "x".repeat(2 * 1024 * 1024) });
    const response = await rest("POST", "/v1/echo", { body: big });
    expect(response.status).toBe(413);
    expectErrorShape(response.json, 413, "INVALID_ARGUMENT");
  });

  it("a 2 MB chunked body over HTTP/2 → 413", async () => {
    const session = http2.connect(gateway.url);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/v1/echo",
          "content-type": "application/json",
        });
        stream.on("response", (headers) => resolve(Number(headers[":status"])));
        stream.on("error", reject);
        stream.write('{"message":"');
        stream.write("x".repeat(2 * 1024 * 1024));
        stream.end('"}');
      });
      expect(status).toBe(413);
    } finally {
      session.destroy();
    }
  });

  it("wrong content type → 415", async () => {
    const response = await rest("POST", "/v1/echo", {
      body: "message=hi",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(response.status).toBe(415);
    expectErrorShape(response.json, 415, "INVALID_ARGUMENT");
  });

  it("maps upstream domain errors with the standard table and their details", async () => {
    const cases: [string, number, string][] = [
      ["not_found", 404, "NOT_FOUND"],
      ["already_exists", 409, "ALREADY_EXISTS"],
      ["failed_precondition", 400, "FAILED_PRECONDITION"],
      ["resource_exhausted", 429, "RESOURCE_EXHAUSTED"],
      ["unavailable", 503, "UNAVAILABLE"],
      ["permission_denied", 403, "PERMISSION_DENIED"],
      ["unauthenticated", 401, "UNAUTHENTICATED"],
    ];
    for (const [code, http, status] of cases) {
      const response = await rest("POST", "/v1/echo/fail", {
        body: JSON.stringify({ code, message: `failed: ${code}` }),
      });
      expect(response.status).toBe(http);
      const error = expectErrorShape(response.json, http, status);
      expect(error.message).toBe(`failed: ${code}`);
      expect(error.details).toContainEqual({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: code.toUpperCase(),
        domain: "zero",
      });
    }
    const invalid = await rest("POST", "/v1/echo/fail", {
      body: JSON.stringify({ code: "invalid_argument", message: "bad code" }),
    });
    expect(violationsOf(expectErrorShape(invalid.json, 400, "INVALID_ARGUMENT"))).toEqual([
      { field: "code", description: "bad code" },
    ]);
  });

  it("keeps per-call latency around a millisecond (no Nagle / per-call session stalls)", async () => {
    const timings: number[] = [];
    for (let i = 0; i < 200; i++) {
      const started = performance.now();
      const response = await fetch(`${gateway.url}/v1/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"message":"ping"}',
      });
      await response.arrayBuffer();
      timings.push(performance.now() - started);
    }
    timings.sort((a, b) => a - b);
    const p50 = timings[100]!;
    const mean = timings.reduce((a, b) => a + b, 0) / timings.length;
    console.info(
      `REST via gateway, 200 sequential calls: mean ${mean.toFixed(2)} ms, p50 ${p50.toFixed(2)} ms, p99 ${timings[197]!.toFixed(2)} ms`,
    );
    // A stall (delayed ACK + Nagle, a session per call) shows as ~40 ms per call.
    expect(p50).toBeLessThan(25);
  });
});

describe("access policy at the edge", () => {
  it("USER method: 401 without a token, 200 with one", async () => {
    const anonymous = await rest("GET", "/v1/echo/whoami");
    expect(anonymous.status).toBe(401);
    expectErrorShape(anonymous.json, 401, "UNAUTHENTICATED");
    const token = await tokens.sign({ sub: "user-7", roles: ["customer"] });
    const signedIn = await rest("GET", "/v1/echo/whoami", { headers: { authorization: `Bearer ${token}` } });
    expect(signedIn.status).toBe(200);
    expect(signedIn.json).toEqual({ subject: "user-7", roles: ["customer"] });
  });

  it("refuses expired and foreign-audience tokens", async () => {
    const expired = await tokens.sign({ expiresIn: "-1m" });
    expect(
      (await rest("GET", "/v1/echo/whoami", { headers: { authorization: `Bearer ${expired}` } })).status,
    ).toBe(401);
    const foreign = await tokens.sign({ aud: "elsewhere" });
    expect(
      (await rest("GET", "/v1/echo/whoami", { headers: { authorization: `Bearer ${foreign}` } })).status,
    ).toBe(401);
    expect((await rest("GET", "/v1/echo/whoami", { headers: { authorization: "Basic abc" } })).status).toBe(
      401,
    );
  });

  it("refuses a request with two Authorization headers (400)", async () => {
    const [a, b] = [await tokens.sign({ sub: "user-a" }), await tokens.sign({ sub: "user-b" })];
    const overHttp1 = await rawRequest(gateway.url, {
      path: "/v1/echo/whoami",
      headers: { authorization: [`Bearer ${a}`, `Bearer ${b}`] },
    });
    expect(overHttp1.status).toBe(400);
    expect(overHttp1.body).toMatch(/several Authorization headers/);
    // (Node's HTTP/2 client refuses to send a second value of this header, so only HTTP/1.1 here;
    // the check reads rawHeaders, which both versions fill.)
  });

  it("ADMIN method needs the admin role", async () => {
    const user = await tokens.sign({ roles: ["customer"] });
    const admin = await tokens.sign({ roles: ["admin"] });
    const body = JSON.stringify({ message: "a" });
    expect(
      (await rest("POST", "/v1/echo/admin", { body, headers: { authorization: `Bearer ${user}` } })).status,
    ).toBe(403);
    expect(
      (await rest("POST", "/v1/echo/admin", { body, headers: { authorization: `Bearer ${admin}` } })).status,
    ).toBe(200);
  });

  it("INTERNAL and undecided methods are refused over REST, even with a service token", async () => {
    const service = await tokens.sign({ kind: "service", roles: ["service"] });
    for (const path of ["/v1/echo/internal", "/v1/echo/undecided"]) {
      const response = await rest("POST", path, {
        body: "{}",
        headers: { authorization: `Bearer ${service}` },
      });
      expect(response.status).toBe(403);
      expectErrorShape(response.json, 403, "PERMISSION_DENIED");
    }
  });

  describe.each([
    ["Connect JSON", () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
    [
      "Connect binary over h2c",
      () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2", useBinaryFormat: true }),
    ],
    ["gRPC", () => createGrpcTransport({ baseUrl: gateway.url })],
    ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
  ] satisfies [string, () => Transport][])("%s through the gateway", (_name, makeTransport) => {
    let client: Client<typeof EchoService>;
    beforeAll(() => {
      client = createClient(EchoService, makeTransport());
    });

    it("calls a public unary method", async () => {
      expect((await client.echo({ message: "hello" })).message).toBe("hello");
    });

    it("streams a server-streaming method", async () => {
      const received: number[] = [];
      for await (const item of client.echoStream({ message: "s", count: 3 })) received.push(item.index);
      expect(received).toEqual([0, 1, 2]);
    });

    it("refuses INTERNAL and undecided methods with permission_denied", async () => {
      const service = await tokens.sign({ kind: "service", roles: ["service"] });
      await expect(
        client.internalEcho({ message: "x" }, { headers: { authorization: `Bearer ${service}` } }),
      ).rejects.toMatchObject({
        code: Code.PermissionDenied,
      });
      await expect(client.undecided({})).rejects.toMatchObject({ code: Code.PermissionDenied });
    });

    it("USER method: unauthenticated without a token, the principal with one", async () => {
      await expect(client.whoAmI({})).rejects.toMatchObject({ code: Code.Unauthenticated });
      const token = await tokens.sign({ sub: "user-9" });
      const me = await client.whoAmI({}, { headers: { authorization: `Bearer ${token}` } });
      expect(me.subject).toBe("user-9");
    });

    it("passes upstream errors through with their details", async () => {
      const error = await client
        .fail({ code: "invalid_argument", message: "nope" })
        .catch((e: unknown) => ConnectError.from(e));
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.InvalidArgument);
      expect((error as ConnectError).details.length).toBeGreaterThan(0);
    });
  });

  it("a raw gRPC refusal is trailers-only (grpc-status 7 on the HEADERS frame)", async () => {
    const session = http2.connect(gateway.url);
    try {
      const { headers, endStream } = await new Promise<{
        headers: http2.IncomingHttpHeaders;
        endStream: boolean;
      }>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/zero.testing.v1.EchoService/InternalEcho",
          "content-type": "application/grpc+proto",
          te: "trailers",
        });
        stream.on("response", (h, flags) =>
          resolve({ headers: h, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }),
        );
        stream.on("error", reject);
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      expect(headers["grpc-status"]).toBe("7");
      expect(endStream).toBe(true);
    } finally {
      session.close();
    }
  });

  it("forwards an upstream's own gRPC error exactly as the service sends it", async () => {
    // An envelope whose payload is not a valid EchoRequest: the service itself refuses it.
    const direct = await rawGrpc(
      echo.url,
      "/zero.testing.v1.EchoService/Echo",
      Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]),
    );
    const viaGateway = await rawGrpc(
      gateway.url,
      "/zero.testing.v1.EchoService/Echo",
      Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]),
    );
    expect(direct.status).not.toBe("0");
    expect(viaGateway).toEqual(direct);
  });

  it("unknown service or method → UNIMPLEMENTED in each protocol", async () => {
    const grpc = await fetchRaw("/zero.nothing.v1.Nope/Call", "application/grpc-web+proto");
    expect(grpc.status).toBe(200);
    expect(grpc.body.subarray(5).toString()).toMatch(/grpc-status: ?12/);
    const connect = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Nope`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
    });
    expect(connect.status).toBe(501);
    expect(await connect.json()).toMatchObject({ code: "unimplemented" });
  });

  it("Connect unary JSON works without the optional Connect-Protocol-Version header (plain curl)", async () => {
    const res = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "curl" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: "curl" });
  });
});

/** A raw gRPC call: where grpc-status arrived (trailers-only HEADERS or trailers) and its value. */
async function rawGrpc(
  baseUrl: string,
  path: string,
  body: Buffer,
): Promise<{ status: string; trailersOnly: boolean }> {
  const session = http2.connect(baseUrl);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc+proto",
        te: "trailers",
      });
      stream.on("response", (headers, flags) => {
        if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0)
          resolve({ status: String(headers["grpc-status"]), trailersOnly: true });
      });
      stream.on("trailers", (trailers: http2.IncomingHttpHeaders) =>
        resolve({ status: String(trailers["grpc-status"]), trailersOnly: false }),
      );
      stream.on("error", reject);
      stream.resume();
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

async function fetchRaw(path: string, contentType: string): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(gateway.url + path, {
    method: "POST",
    headers: { "content-type": contentType },
    body: Buffer.from([0, 0, 0, 0, 0]),
  });
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

describe("GET /health", () => {
  it("aggregates the upstreams' grpc.health.v1 status", async () => {
    const response = await rest("GET", "/health");
    expect(response.status).toBe(200);
    expect(response.json).toEqual({ status: "SERVING", services: { testing: "SERVING" } });
  });

  it("answers /healthz, /readyz and /metrics for the gateway itself", async () => {
    expect((await rest("GET", "/healthz")).status).toBe(200);
    expect((await rest("GET", "/readyz")).status).toBe(200);
    const metrics = await fetch(`${gateway.url}/metrics`);
    expect(await metrics.text()).toMatch(
      /gateway_requests_total\{protocol="rest",route="POST \/v1\/echo",status="200"\} \d+/,
    );
  });
});
