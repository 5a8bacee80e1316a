import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startProbeEchoServer, type ProbeEchoServer } from "./fixtures/probe-echo-server.js";
import { rawRequest } from "./fixtures/raw-http.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// Deadlines, retries, circuit breakers and round robin with health-aware ejection, against real
// instances of an echo service that the tests stop and start again on the same port.

const logger = createLogger("gateway-test", { level: "silent" });
let tokens: TestTokens;

beforeAll(async () => {
  tokens = await createTestTokens();
});

const post = (gateway: Gateway, message: string, headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}/v1/echo`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ message }),
  });

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await delay(50);
  }
}

describe("deadlines and forwarded client facts", () => {
  let probe: ProbeEchoServer;
  let gateway: Gateway;

  beforeAll(async () => {
    probe = await startProbeEchoServer({ logger, verifier: tokens.verifier });
    gateway = await startGateway({
      services: [EchoService],
      upstreamUrls: { testing: probe.url },
      logger,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      upstreamTimeoutMs: 4_000,
      routeTimeouts: [{ pattern: "zero.testing.v1.EchoService/WhoAmI", timeoutMs: 1_500 }],
      resilience: { healthCheckIntervalMs: 0 },
    });
  });

  afterAll(async () => {
    await gateway?.close(1000);
    await probe?.close();
  });

  const lastCall = () => probe.calls[probe.calls.length - 1];

  it("sends the route's default deadline when the client gives none", async () => {
    expect((await post(gateway, "a")).status).toBe(200);
    expect(Number(lastCall()?.headers["connect-timeout-ms"])).toBeLessThanOrEqual(4_000);
    expect(Number(lastCall()?.headers["connect-timeout-ms"])).toBeGreaterThan(3_000);

    const token = await tokens.sign({ sub: "u" });
    const me = await fetch(`${gateway.url}/v1/echo/whoami`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(me.status).toBe(200);
    expect(Number(lastCall()?.headers["connect-timeout-ms"])).toBeLessThanOrEqual(1_500);
  });

  it("passes a REST client's own deadline on, and answers 504 when it passes", async () => {
    expect((await post(gateway, "b", { "connect-timeout-ms": "800" })).status).toBe(200);
    expect(Number(lastCall()?.headers["connect-timeout-ms"])).toBeLessThanOrEqual(800);

    const started = performance.now();
    const late = await post(gateway, "sleep:3000", { "grpc-timeout": "300m" });
    expect(late.status).toBe(504);
    expect(((await late.json()) as { error: { status: string } }).error.status).toBe("DEADLINE_EXCEEDED");
    expect(performance.now() - started).toBeLessThan(2_500);
  });

  it("passes gRPC and Connect deadlines through, and adds the default to unary calls without one", async () => {
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url }));
    await grpc.echo({ message: "c" }, { timeoutMs: 700 });
    expect(lastCall()?.timeoutMs).toBeLessThanOrEqual(700);

    const connect = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    await expect(connect.echo({ message: "sleep:3000" }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    // A gRPC client whose deadline passes resets its stream; the gateway must not answer into it
    // (that once threw outside any handler and took the process down).
    await expect(grpc.echo({ message: "sleep:3000" }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await connect.echo({ message: "d" });
    expect(Number(lastCall()?.headers["connect-timeout-ms"])).toBe(4_000);
    await grpc.echo({ message: "e" });
    expect(lastCall()?.headers["grpc-timeout"]).toBe("4000m");
  });

  it("tells the service who the client is (X-Forwarded-*), never what the client claims", async () => {
    await post(gateway, "f", { "x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "https" });
    expect(lastCall()?.headers).toMatchObject({
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
    });
    const connect = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    await connect.echo({ message: "g" }, { headers: { "x-forwarded-for": "6.6.6.6" } });
    expect(lastCall()?.headers["x-forwarded-for"]).toBe("127.0.0.1");
  });
});

describe("retries", () => {
  let probe: ProbeEchoServer;
  let gateway: Gateway;

  beforeAll(async () => {
    probe = await startProbeEchoServer({ logger, verifier: tokens.verifier });
    gateway = await startGateway({
      services: [EchoService],
      upstreamUrls: { testing: probe.url },
      logger,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      resilience: { healthCheckIntervalMs: 0 },
    });
  });

  afterAll(async () => {
    await gateway?.close(1000);
    await probe?.close();
  });

  it("retries a safe call (REST GET) that the service answered UNAVAILABLE", async () => {
    const token = await tokens.sign({ sub: "retry-user" });
    const before = probe.calls.length;
    probe.failNext(1);
    const response = await fetch(`${gateway.url}/v1/echo/whoami`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    expect(probe.calls.length - before).toBe(2);
  });

  it("never repeats a call with side effects (POST) the service may have acted on", async () => {
    const before = probe.calls.length;
    probe.failNext(1);
    const response = await post(gateway, "once");
    expect(response.status).toBe(503);
    expect(probe.calls.length - before).toBe(1);
  });
});

describe("several instances of a service", () => {
  let a: ProbeEchoServer;
  let b: ProbeEchoServer;
  let gateway: Gateway;

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startProbeEchoServer({ logger, verifier: tokens.verifier }),
      startProbeEchoServer({ logger, verifier: tokens.verifier }),
    ]);
    gateway = await startGateway({
      services: [EchoService],
      upstreamUrls: { testing: `${a.url},${b.url}` },
      logger,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      resilience: { healthCheckIntervalMs: 100, breakerFailureThreshold: 3, breakerOpenMs: 300 },
    });
  });

  afterAll(async () => {
    await gateway?.close(1000);
    await Promise.all([a?.close(), b?.close()]);
  });

  it("spreads calls round robin", async () => {
    const [beforeA, beforeB] = [a.calls.length, b.calls.length];
    for (let i = 0; i < 10; i++) expect((await post(gateway, `rr-${i}`)).status).toBe(200);
    // 5 and 5, unless a health check timed out on a loaded machine and skipped one for a moment.
    expect(a.calls.length - beforeA + (b.calls.length - beforeB)).toBe(10);
    expect(a.calls.length - beforeA).toBeGreaterThanOrEqual(3);
    expect(b.calls.length - beforeB).toBeGreaterThanOrEqual(3);
  });

  it("keeps answering when one instance is killed, ejects it, and takes it back when it returns", async () => {
    const port = b.port;
    await b.close();

    // No call fails: a refused connection sent nothing, so the other instance takes the call.
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url }));
    for (let i = 0; i < 20; i++) {
      expect((await post(gateway, `down-${i}`)).status).toBe(200);
      expect((await grpc.echo({ message: `down-${i}` })).message).toBe(`down-${i}`);
    }

    await eventually(async () => {
      const health = (await (await fetch(`${gateway.url}/health/testing`)).json()) as {
        status: string;
        instances: { url: string; status: string }[];
      };
      return health.status === "SERVING" && health.instances.some((i) => i.status === "NOT_SERVING");
    });
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_upstream_healthy\{upstream="testing",instance="[^"]+"\} 0/);

    b = await startProbeEchoServer({ logger, verifier: tokens.verifier, port });
    await eventually(async () => {
      const health = (await (await fetch(`${gateway.url}/health/testing`)).json()) as {
        instances: { status: string }[];
      };
      return health.instances.every((i) => i.status === "SERVING");
    });
    // Back in rotation (its circuit closes with the first call let through).
    await eventually(async () => {
      await post(gateway, "back");
      return b.calls.length > 0;
    });
  });
});

describe("circuit breaker", () => {
  const breakerGateway = (
    probe: ProbeEchoServer,
    breaker: { breakerFailureThreshold: number; breakerOpenMs: number },
  ): Promise<Gateway> =>
    startGateway({
      services: [EchoService],
      upstreamUrls: { testing: probe.url },
      logger,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      resilience: { healthCheckIntervalMs: 0, ...breaker },
    });

  it("is not opened by clients whose own short deadlines run out, nor by slow request bodies", async () => {
    const probe = await startProbeEchoServer({ logger, verifier: tokens.verifier });
    const gateway = await breakerGateway(probe, { breakerFailureThreshold: 2, breakerOpenMs: 5_000 });
    const circuit = async () =>
      /gateway_upstream_circuit_state\{upstream="testing",instance="[^"]+"\} (\d)/.exec(
        await (await fetch(`${gateway.url}/metrics`)).text(),
      )?.[1];
    try {
      // REST and pass-through calls with a 50 ms deadline on a call that takes 1.5 s whatever the
      // deadline (and a client that does not enforce its own, like curl): each times out at the
      // gateway, which must not count that against the instance.
      for (let i = 0; i < 3; i++) {
        expect((await post(gateway, "hang:1500", { "connect-timeout-ms": "50" })).status).toBe(504);
        const rpc = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Echo`, {
          method: "POST",
          headers: { "content-type": "application/json", "connect-timeout-ms": "50" },
          body: '{"message":"hang:1500"}',
        });
        expect(((await rpc.json()) as { code: string }).code).toBe("deadline_exceeded");
      }
      // A client that sends half its body and stalls: the deadline passes at the gateway.
      for (let i = 0; i < 3; i++) {
        const answer = await rawRequest(gateway.url, {
          method: "POST",
          path: "/zero.testing.v1.EchoService/Echo",
          headers: { "content-type": "application/json", "connect-timeout-ms": "100", "content-length": 100 },
          body: '{"message":',
          stall: true,
        });
        expect(JSON.parse(answer.body)).toMatchObject({ code: "deadline_exceeded" });
        expect(answer.body).toMatch(/still arriving/);
      }
      // A far deadline (10 digits of ms is valid) is a deadline, not one already passed.
      expect((await post(gateway, "far", { "connect-timeout-ms": "9999999999" })).status).toBe(200);
      expect(await circuit()).toBe("0");
      expect((await post(gateway, "still served")).status).toBe(200);
    } finally {
      await gateway.close(1000);
      await probe.close();
    }
  });

  it("answers 503 at once while the only instance is down, and closes again when it recovers", async () => {
    let probe = await startProbeEchoServer({ logger, verifier: tokens.verifier });
    const port = probe.port;
    const gateway = await breakerGateway(probe, { breakerFailureThreshold: 3, breakerOpenMs: 500 });
    try {
      expect((await post(gateway, "up")).status).toBe(200);
      await probe.close();
      for (let i = 0; i < 3; i++) expect((await post(gateway, "down")).status).toBe(503);

      // Open: refused without trying the instance.
      const before = await (await fetch(`${gateway.url}/metrics`)).text();
      const rejectedBefore = Number(
        /gateway_upstream_rejected_total\{upstream="testing"\} (\d+)/.exec(before)?.[1] ?? 0,
      );
      const started = performance.now();
      const fast = await post(gateway, "open");
      expect(fast.status).toBe(503);
      expect(((await fast.json()) as { error: { message: string } }).error.message).toBe(
        "the testing service is unavailable: retry shortly",
      );
      expect(performance.now() - started).toBeLessThan(1_000);
      const after = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(Number(/gateway_upstream_rejected_total\{upstream="testing"\} (\d+)/.exec(after)?.[1])).toBe(
        rejectedBefore + 1,
      );
      expect(after).toMatch(/gateway_upstream_circuit_state\{upstream="testing",instance="[^"]+"\} 2/);

      probe = await startProbeEchoServer({ logger, verifier: tokens.verifier, port });
      await eventually(async () => (await post(gateway, "recovered")).status === 200);
      const closed = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(closed).toMatch(/gateway_upstream_circuit_state\{upstream="testing",instance="[^"]+"\} 0/);
    } finally {
      await gateway.close(1000);
      await probe.close();
    }
  });
});
