import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens } from "./fixtures/tokens.js";

const logger = createLogger("gateway-test", { level: "silent" });
let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  const tokens = await createTestTokens();
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

describe("an upstream that stops", () => {
  it("answers 503 UNAVAILABLE quickly over REST and RPC, and /health says NOT_SERVING", async () => {
    const call = () =>
      fetch(`${gateway.url}/v1/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"message":"x"}',
      });
    expect((await call()).status).toBe(200);

    await echo.close(1000);

    const started = performance.now();
    const response = await call();
    const elapsed = performance.now() - started;
    expect(response.status).toBe(503);
    const body = (await response.json()) as { error: { code: number; status: string; message: string } };
    expect(body.error).toMatchObject({ code: 503, status: "UNAVAILABLE" });
    expect(body.error.message).toBe("the testing service is unavailable: retry shortly");
    expect(elapsed).toBeLessThan(1000);

    const client = createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url }));
    await expect(client.echo({ message: "x" })).rejects.toMatchObject({ code: Code.Unavailable });

    const health = await fetch(`${gateway.url}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: "NOT_SERVING", services: { testing: "NOT_SERVING" } });
  });
});
