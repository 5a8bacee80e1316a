import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@zero/proto/grpc/health/v1/health_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/server.js";
import { startEchoTestServer } from "./fixtures/echo-server.js";

let server: Server;
let health: Client<typeof Health>;
let echo: Client<typeof EchoService>;
// The dependency the readiness check looks at; tests take it down and bring it back.
let dependencyUp = true;

beforeAll(async () => {
  server = await startEchoTestServer({
    readiness: [
      {
        name: "store",
        check: () => (dependencyUp ? Promise.resolve() : Promise.reject(new Error("store is down"))),
      },
      { name: "always-fine", check: () => Promise.resolve() },
    ],
    readinessIntervalMs: 50,
  });
  const transport = createGrpcTransport({ baseUrl: server.url });
  health = createClient(Health, transport);
  echo = createClient(EchoService, transport);
});

afterAll(async () => {
  await server.close(2000);
});

async function setDependency(up: boolean): Promise<void> {
  dependencyUp = up;
  // Let the poller notice (its period is 50 ms).
  await new Promise((resolve) => setTimeout(resolve, 150));
}

describe("HTTP probes", () => {
  it("/healthz answers 200 while the process runs, whatever the dependencies", async () => {
    await setDependency(false);
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    await setDependency(true);
  });

  it("/readyz follows the readiness checks and names the failing ones", async () => {
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });

    await setDependency(false);
    const notReady = await fetch(`${server.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: "not_ready", failing: ["store"] });

    await setDependency(true);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });

  it("/metrics shows per-RPC counts, errors, durations and process metrics", async () => {
    await echo.echo({ message: "one" });
    await echo.echo({ message: "two" });
    await echo.fail({ code: "not_found" }).catch(() => undefined);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain(
      'rpc_requests_total{service="zero.testing.v1.EchoService",method="Echo",code="ok"} 2',
    );
    expect(text).toContain(
      'rpc_requests_total{service="zero.testing.v1.EchoService",method="Fail",code="not_found"} 1',
    );
    expect(text).toContain(
      'rpc_errors_total{service="zero.testing.v1.EchoService",method="Fail",code="not_found"} 1',
    );
    expect(text).toMatch(
      /rpc_request_duration_seconds_count\{service="zero.testing.v1.EchoService",method="Echo",code="ok"\} 2/,
    );
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
  });
});

describe("grpc.health.v1.Health", () => {
  it("Check answers for the server, each registered service, and NOT_FOUND for others", async () => {
    for (const service of [
      "",
      "zero.testing.v1.EchoService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
    ]) {
      expect((await health.check({ service })).status).toBe(ServingStatus.SERVING);
    }
    const error = await health
      .check({ service: "zero.nope.v1.Nope" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });

  it("Check turns NOT_SERVING while a dependency is down", async () => {
    await setDependency(false);
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect((await health.check({ service: "zero.testing.v1.EchoService" })).status).toBe(
      ServingStatus.NOT_SERVING,
    );
    await setDependency(true);
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
  });

  it("List reports every service", async () => {
    const res = await health.list({});
    expect(Object.keys(res.statuses).sort()).toEqual(
      [
        "",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "zero.testing.v1.EchoService",
      ].sort(),
    );
    expect(Object.values(res.statuses).every((s) => s.status === ServingStatus.SERVING)).toBe(true);
  });

  it("Watch sends the current status, then every change", async () => {
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const stream = health.watch({ service: "zero.testing.v1.EchoService" }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const next = async (): Promise<ServingStatus> => {
      const step = await iterator.next();
      if (step.done === true) throw new Error("watch ended early");
      seen.push(step.value.status);
      return step.value.status;
    };
    expect(await next()).toBe(ServingStatus.SERVING);
    dependencyUp = false;
    expect(await next()).toBe(ServingStatus.NOT_SERVING);
    dependencyUp = true;
    expect(await next()).toBe(ServingStatus.SERVING);
    abort.abort();
    await iterator.return?.();
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  });

  it("Watch of an unknown service answers SERVICE_UNKNOWN instead of failing", async () => {
    const abort = new AbortController();
    const stream = health.watch({ service: "zero.nope.v1.Nope" }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done === true ? undefined : first.value.status).toBe(ServingStatus.SERVICE_UNKNOWN);
    abort.abort();
    await iterator.return?.();
  });
});
