import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { captureLogs, type CapturedLogs } from "./fixtures/captured-logs.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// What operators and browsers see of the gateway: health endpoints, RED metrics, one access-log
// line per request, CORS, security headers and request ids.

let logs: CapturedLogs;
let tokens: TestTokens;
let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  logs = captureLogs();
  tokens = await createTestTokens();
  echo = await startEchoServer({ logger: logs.logger, verifier: tokens.verifier });
  gateway = await gatewayWith({
    cors: { allowedOrigins: ["https://shop.example.com"], maxAgeSeconds: 900 },
  });
});

/** A gateway in front of this file's echo service, with `options` added. */
const gatewayWith = (options: Partial<Parameters<typeof startGateway>[0]>): Promise<Gateway> =>
  startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger: logs.logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
    resilience: { healthCheckIntervalMs: 0 },
    ...options,
  });

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

const echoCall = (headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}/v1/echo`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: '{"message":"secret-body-text"}',
  });

describe("health endpoints", () => {
  it("GET /health/ready says whether the gateway takes traffic", async () => {
    const response = await fetch(`${gateway.url}/health/ready`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ready" });
  });

  it("GET /health/<service> details each instance", async () => {
    const response = await fetch(`${gateway.url}/health/testing`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      service: "testing",
      status: "SERVING",
      instances: [{ url: echo.url, status: "SERVING", circuit: "closed" }],
    });
  });

  it("GET /health/<unknown> is a 404 in the error shape", async () => {
    const response = await fetch(`${gateway.url}/health/nothing`);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { status: string } }).error.status).toBe("NOT_FOUND");
  });
});

describe("who may read what only operators need", () => {
  it("answers /metrics and /health/<service> only to OPERATIONS_NETWORKS; /health and readiness to anyone", async () => {
    // This test's client is 127.0.0.1: outside the one network allowed here.
    const guarded = await gatewayWith({ operationsNetworks: ["10.0.0.0/8"] });
    try {
      for (const path of ["/metrics", "/health/testing"]) {
        const response = await fetch(`${guarded.url}${path}`);
        expect({ path, status: response.status }).toEqual({ path, status: 404 });
        expect(await response.text()).not.toContain(echo.url);
      }
      for (const path of ["/health", "/health/ready", "/healthz", "/readyz"]) {
        expect({ path, status: (await fetch(`${guarded.url}${path}`)).status }).toEqual({
          path,
          status: 200,
        });
      }
    } finally {
      await guarded.close(1000);
    }
  });
});

describe("metrics", () => {
  it("counts requests, errors and durations per route and per upstream", async () => {
    await echoCall();
    await fetch(`${gateway.url}/v1/echo/fail`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"code":"unavailable"}',
    });
    await createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url })).echo({ message: "x" });
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(text).toMatch(
      /gateway_requests_total\{protocol="rest",route="POST \/v1\/echo",status="200"\} \d+/,
    );
    expect(text).toMatch(
      /gateway_request_errors_total\{protocol="rest",route="POST \/v1\/echo\/fail"\} [1-9]/,
    );
    expect(text).toMatch(
      /gateway_request_duration_seconds_bucket\{le="0.05",protocol="grpc",route="zero.testing.v1.EchoService\/Echo"\} \d+/,
    );
    expect(text).toMatch(
      /gateway_upstream_requests_total\{upstream="testing",instance="[^"]+",outcome="ok"\} [1-9]/,
    );
    expect(text).toMatch(/gateway_upstream_request_duration_seconds_count\{upstream="testing"\} [1-9]/);
    expect(text).toContain(`gateway_upstream_circuit_state{upstream="testing",instance="${echo.url}"} 0`);
  });
});

describe("metrics of RPCs whose HTTP status is 200 whatever their outcome", () => {
  // gRPC, gRPC-Web and Connect streaming carry the code at the end of the response; the status
  // label is the HTTP status of that code, as for Connect unary and REST.
  const counted = async (protocol: string, rpc: string, status: number): Promise<number> => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) =>
        l.startsWith(
          `gateway_requests_total{protocol="${protocol}",route="zero.testing.v1.EchoService/${rpc}",status="${status}"}`,
        ),
      );
    return Number(line?.split(" ").pop() ?? 0);
  };
  const failing = async (call: Promise<unknown>): Promise<void> => {
    await expect(call).rejects.toBeInstanceOf(ConnectError);
  };

  it.each<[string, string, () => Transport]>([
    ["grpc", "gRPC", () => createGrpcTransport({ baseUrl: gateway.url })],
    ["grpc-web", "gRPC-Web", () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
  ])(
    "%s: a service's error, the gateway's refusal and a success each keep their status",
    async (protocol, _, transport) => {
      const client = createClient(EchoService, transport());
      const before = {
        unavailable: await counted(protocol, "Fail", 503),
        denied: await counted(protocol, "InternalEcho", 403),
        ok: await counted(protocol, "Echo", 200),
      };
      await failing(client.fail({ code: "unavailable" }));
      await failing(client.internalEcho({}));
      await client.echo({ message: "x" });
      expect(await counted(protocol, "Fail", 503)).toBe(before.unavailable + 1);
      expect(await counted(protocol, "InternalEcho", 403)).toBe(before.denied + 1);
      expect(await counted(protocol, "Echo", 200)).toBe(before.ok + 1);
    },
  );

  it("Connect streaming: the end-of-stream message's error is counted with its status", async () => {
    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const before = {
      ok: await counted("connect-stream", "EchoStream", 200),
      invalid: await counted("connect-stream", "EchoStream", 400),
    };
    const messages: string[] = [];
    for await (const reply of client.echoStream({ message: "m", count: 2 })) messages.push(reply.message);
    expect(messages).toEqual(["m", "m"]);
    await failing(
      (async () => {
        for await (const _ of client.echoStream({ message: "m", count: -1 })) void _;
      })(),
    );
    expect(await counted("connect-stream", "EchoStream", 200)).toBe(before.ok + 1);
    expect(await counted("connect-stream", "EchoStream", 400)).toBe(before.invalid + 1);
  });
});

describe("access log", () => {
  it("writes one structured line per request, without bodies or credentials", async () => {
    const token = await tokens.sign({ sub: "log-user" });
    await echoCall({ "x-request-id": "req-log-1", authorization: `Bearer ${token}` });
    const lines = logs.lines.filter((line) => line.msg === "request" && line.request_id === "req-log-1");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: "info",
      method: "POST",
      route: "POST /v1/echo",
      status: 200,
      upstream: "testing",
      client_ip: "127.0.0.1",
      protocol: "rest",
    });
    expect(typeof lines[0]?.duration_ms).toBe("number");
    expect(logs.text()).not.toContain(token);
    expect(logs.text()).not.toContain("secret-body-text");
  });
});

describe("edge headers", () => {
  it("sends security headers, and HSTS only over TLS (not here)", async () => {
    const response = await echoCall();
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("x-frame-options")).toBe("DENY");
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    expect(response.headers.get("content-security-policy")).toBe(
      "default-src 'none'; frame-ancestors 'none'",
    );
    expect(response.headers.get("strict-transport-security")).toBeNull();
  });

  it("generates an X-Request-Id, or keeps a well-formed one", async () => {
    expect((await echoCall()).headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect((await echoCall({ "x-request-id": "abc.123" })).headers.get("x-request-id")).toBe("abc.123");
    expect(
      (await echoCall({ "x-request-id": "bad id\twith spaces" })).headers.get("x-request-id"),
    ).not.toContain(" ");
  });

  it("answers a CORS preflight from an allowed origin itself, cached for max-age", async () => {
    const response = await fetch(`${gateway.url}/v1/echo`, {
      method: "OPTIONS",
      headers: {
        origin: "https://shop.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("https://shop.example.com");
    expect(response.headers.get("access-control-allow-headers")).toBe("content-type, authorization");
    expect(response.headers.get("access-control-max-age")).toBe("900");
  });

  it("refuses a preflight from another origin with 403 saying why", async () => {
    const response = await fetch(`${gateway.url}/v1/echo`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    const body = (await response.json()) as { error: { status: string; message: string } };
    expect(body.error.status).toBe("PERMISSION_DENIED");
    expect(body.error.message).toContain("https://evil.example");
  });

  it("lets an allowed origin read the response and the headers it needs", async () => {
    const allowed = await echoCall({ origin: "https://shop.example.com" });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://shop.example.com");
    expect(allowed.headers.get("access-control-expose-headers")).toContain("x-request-id");
    const other = await echoCall({ origin: "https://evil.example" });
    expect(other.status).toBe(200);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});
