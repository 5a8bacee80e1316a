import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@zero/proto/grpc/health/v1/health_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { describe, expect, it } from "vitest";
import { startEchoTestServer } from "./fixtures/echo-server.js";

const anEchoServer = () => startEchoTestServer();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("graceful close", () => {
  it("lets in-flight calls finish, ends health watches with NOT_SERVING, and refuses new connections", async () => {
    const server = await anEchoServer();
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: server.url }));
    const connect = createClient(
      EchoService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));

    const watched: ServingStatus[] = [];
    const watching = (async () => {
      for await (const res of health.watch({ service: "" })) watched.push(res.status);
    })();
    const inFlight = [grpc.echo({ message: "slow:700" }), connect.echo({ message: "slow:700" })];
    await sleep(150);

    const startedAt = Date.now();
    const closing = server.close(5000);
    await sleep(50);
    // For a moment the port still accepts (connections already in the kernel's queue must not be
    // reset), but says it is not ready, so balancers stop sending.
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    await sleep(300);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();

    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.message)).toEqual(["slow:700", "slow:700"]);
    await closing;
    const took = Date.now() - startedAt;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);

    await watching;
    expect(watched).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });

  it("cancels what is still running when the deadline passes", async () => {
    const server = await anEchoServer();
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: server.url }));
    const slow = grpc.echo({ message: "slow:10000" }).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
    await sleep(100);
    const startedAt = Date.now();
    await server.close(300);
    expect(Date.now() - startedAt).toBeLessThan(2000);
    expect(await slow).toBeInstanceOf(ConnectError);
  });

  it("is idempotent", async () => {
    const server = await anEchoServer();
    const first = server.close(1000);
    const second = server.close(1000);
    expect(second).toBe(first);
    await first;
  });
});
