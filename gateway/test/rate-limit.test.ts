import { Code, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { startProcess, probeTcp, type ServerProcess } from "@zero/testkit/server-process";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import type { RateLimitConfig } from "../src/edge/rate-limit-policy.js";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { captureLogs } from "./fixtures/captured-logs.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// Rate limiting through the gateway against a private redis-server: the default per-IP limit
// (5/min here instead of 100, to keep the test short), a stricter route, a user override, one
// budget across every protocol and every gateway replica, client addresses only from trusted
// proxies, and what happens while Redis is down.

const quiet = createLogger("gateway-test", { level: "silent" });
const limits: RateLimitConfig = {
  default: { limit: 5, periodMs: 60_000 },
  routes: [{ pattern: "zero.testing.v1.EchoService/Fail", limit: { limit: 2, periodMs: 60_000 } }],
  users: { "vip-user": { limit: 50, periodMs: 60_000 } },
};

let redis: TestRedis;
let tokens: TestTokens;
let echo: Server;
/** Trusts 127.0.0.1 as a proxy: each test picks its client address with X-Forwarded-For. */
let gateway: Gateway;
/** A second replica sharing the same Redis. */
let replica: Gateway;
/** Trusts no proxy: X-Forwarded-For is ignored. */
let direct: Gateway;

beforeAll(async () => {
  redis = await startRedis();
  tokens = await createTestTokens();
  echo = await startEchoServer({ logger: quiet, verifier: tokens.verifier });
  const start = (trustedProxies: string[]) =>
    startGateway({
      services: [EchoService],
      upstreamUrls: { testing: echo.url },
      logger: quiet,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      rateLimit: { redisUrl: redis.url, limits },
      trustedProxies,
    });
  [gateway, replica, direct] = await Promise.all([start(["127.0.0.1"]), start(["127.0.0.1"]), start([])]);
});

afterAll(async () => {
  await Promise.all([gateway?.close(1000), replica?.close(1000), direct?.close(1000)]);
  await echo?.close(1000);
  await redis?.stop();
});

let clients = 0;
/** A fresh client address (an unused bucket) for each test. */
const nextClient = (): string => `198.51.100.${++clients}`;

function echoFrom(client: string, target: Gateway = gateway, headers: Record<string, string> = {}) {
  return fetch(`${target.url}/v1/echo`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": client, ...headers },
    body: '{"message":"hi"}',
  });
}

describe("rate limiting", () => {
  it("answers RateLimit headers on every limited route, then 429 with Retry-After once the budget is spent", async () => {
    const client = nextClient();
    const first = await echoFrom(client);
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-limit")).toBe("5");
    expect(first.headers.get("ratelimit-remaining")).toBe("4");
    expect(Number(first.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
    expect(first.headers.get("ratelimit-policy")).toBe("5;w=60");
    for (let i = 0; i < 4; i++) expect((await echoFrom(client)).status).toBe(200);

    const refused = await echoFrom(client);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get("ratelimit-remaining")).toBe("0");
    const body = (await refused.json()) as { error: { code: number; status: string; message: string } };
    expect(body.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED" });
    expect(body.error.message).toMatch(/retry after \d+ s/);
    // Another client is not affected.
    expect((await echoFrom(nextClient())).status).toBe(200);
  });

  it("counts every protocol against the same budget", async () => {
    const client = nextClient();
    const headers = { "x-forwarded-for": client };
    for (let i = 0; i < 2; i++) expect((await echoFrom(client)).status).toBe(200);
    const connect = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url }));
    const grpcWeb = createClient(
      EchoService,
      createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    await connect.echo({ message: "x" }, { headers });
    await grpc.echo({ message: "x" }, { headers });
    await grpcWeb.echo({ message: "x" }, { headers });
    for (const client of [connect, grpc, grpcWeb]) {
      await expect(client.echo({ message: "x" }, { headers })).rejects.toMatchObject({
        code: Code.ResourceExhausted,
      });
    }
  });

  it("shares the budget between gateway replicas (the counters live in Redis)", async () => {
    const client = nextClient();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await echoFrom(client, i % 2 === 0 ? gateway : replica)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it("charges concurrent requests one by one (checks sent to Redis together still each count)", async () => {
    const client = nextClient();
    // Sent at once, so the gateway issues their checks in the same turns of its event loop and
    // ioredis pipelines them; each is still its own atomic script run against the same bucket.
    const responses = await Promise.all(Array.from({ length: 8 }, () => echoFrom(client)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    const remaining = responses
      .filter((r) => r.status === 200)
      .map((r) => r.headers.get("ratelimit-remaining"))
      .sort();
    expect(remaining).toEqual(["0", "1", "2", "3", "4"]);
  });

  it("applies a stricter route limit on top of the client's overall one", async () => {
    const client = nextClient();
    const fail = () =>
      fetch(`${gateway.url}/v1/echo/fail`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": client },
        body: '{"code":"not_found"}',
      });
    const first = await fail();
    expect(first.status).toBe(404); // the service's own answer: the limiter let it through
    expect(first.headers.get("ratelimit-limit")).toBe("2");
    expect((await fail()).status).toBe(404);
    expect((await fail()).status).toBe(429);
    // The overall budget still has room for other routes.
    expect((await echoFrom(client)).status).toBe(200);
  });

  it("gives a user with an override their own, larger budget", async () => {
    const client = nextClient();
    const vip = { authorization: `Bearer ${await tokens.sign({ sub: "vip-user" })}` };
    for (let i = 0; i < 10; i++) {
      const response = await echoFrom(client, gateway, vip);
      expect(response.status).toBe(200);
      expect(response.headers.get("ratelimit-limit")).toBe("50");
    }
    // Someone else at the same address is still limited per address.
    const other = { authorization: `Bearer ${await tokens.sign({ sub: "ordinary-user" })}` };
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await echoFrom(client, gateway, other)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    const statuses: number[] = [];
    // A new spoofed address per request would give a fresh budget each time if it were believed.
    for (let i = 0; i < 6; i++) statuses.push((await echoFrom(nextClient(), direct)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });
});

describe("rate limiting while Redis is down", () => {
  it("fails open onto a local limiter (still limiting), logs it once, and returns to Redis when it is back", async () => {
    const own = await startRedis();
    const logs = captureLogs();
    const gw = await startGateway({
      services: [EchoService],
      upstreamUrls: { testing: echo.url },
      logger: logs.logger,
      port: 0,
      host: "127.0.0.1",
      verifier: tokens.verifier,
      rateLimit: { redisUrl: own.url, limits },
      trustedProxies: ["127.0.0.1"],
      accessLog: false,
    });
    let restarted: ServerProcess | undefined;
    try {
      expect((await echoFrom(nextClient(), gw)).status).toBe(200);
      await own.stop();

      const client = nextClient();
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await echoFrom(client, gw)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const fallbackLines = logs.lines.filter((line) => String(line.msg).includes("counting in memory"));
      expect(fallbackLines).toHaveLength(1);
      expect(fallbackLines[0]?.level).toBe("warn");

      // The same port again, as a restarted Redis would come back.
      restarted = await startProcess({
        command: "redis-server",
        args: ["--port", String(own.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        isReady: () => probeTcp(own.port, "+PONG", "PING\r\n"),
        installHint: "apt-get install redis-server",
      });
      const deadline = Date.now() + 15_000;
      while (
        !logs.lines.some((line) => String(line.msg).includes("Redis is back")) &&
        Date.now() < deadline
      ) {
        await echoFrom(nextClient(), gw);
        await delay(100);
      }
      expect(logs.lines.some((line) => String(line.msg).includes("Redis is back"))).toBe(true);
      // Counting happens in Redis again: a fresh Redis has no memory of `client`'s spent budget.
      expect((await echoFrom(client, gw)).status).toBe(200);
    } finally {
      await gw.close(1000);
      await restarted?.stop();
      await own.stop();
    }
  });
});
