import { randomBytes } from "node:crypto";
import { createLogger } from "@zero/kit/log";
import { startAuthServer, type AuthServer } from "@zero/auth/auth-server";
import { loadConfig } from "@zero/auth/config";
import { startEchoServer } from "@zero/echo/echo-server";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import type { Server } from "@zero/kit/server";
import { publicServices } from "@zero/gateway/public-services";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";

/**
 * The platform as it exists today (auth behind the gateway), in-process on free ports, over a
 * fresh database and a private NATS server, so e2e test files run in parallel. Start telemetry
 * (if the test needs spans) before calling this.
 */
export interface TestPlatform {
  gateway: Gateway;
  auth: AuthServer;
  /** The diagnostic echo service: a USER method (WhoAmI) on a service other than auth. */
  echo: Server;
  nats: TestNats;
  redis: TestRedis;
  database: TestDatabase;
  /** `http://127.0.0.1:<gateway port>` */
  url: string;
  close(): Promise<void>;
}

export async function startPlatform(): Promise<TestPlatform> {
  const logger = createLogger("e2e", { level: "silent" });
  const database = await createTestDatabase("e2e");
  const nats = await startNats();
  // Private: throttles and revocations of one test file never leak into another's.
  const redis = await startRedis();
  const auth = await startAuthServer({
    config: loadConfig({
      PORT: "0",
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    }),
    logger,
    host: "127.0.0.1",
  });
  const echo = await startEchoServer({
    logger,
    verifier: createAuthTokenVerifier({ authUrl: auth.url, issuer: "zero-auth", audience: "zero" }),
  });
  const gateway = await startGateway({
    services: publicServices,
    upstreamUrls: { auth: auth.url, testing: echo.url },
    logger,
    host: "127.0.0.1",
    port: 0,
    tokenRevocation: { redisUrl: redis.url, accessTokenTtlSeconds: 900 },
  });
  return {
    gateway,
    auth,
    echo,
    nats,
    redis,
    database,
    url: gateway.url,
    async close() {
      await gateway.close(2000);
      await echo.close(2000);
      await auth.close(2000);
      await nats.stop();
      await redis.stop();
      await database.drop();
    },
  };
}

let counter = 0;
/** A unique, valid registration body. */
export function aRegistration(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    email: `e2e-${process.pid}-${Date.now()}-${counter}@example.com`,
    password: "correct horse battery staple",
    firstName: "Grace",
    lastName: "Hopper",
    ...overrides,
  };
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text === "" ? undefined : (JSON.parse(text) as unknown),
    headers: res.headers,
  };
}

export interface JsonResponse {
  status: number;
  body: unknown;
  headers: Headers;
}

/** DESIGN.md's error shape. */
export interface ApiError {
  error: {
    code: number;
    status: string;
    message: string;
    details: ({ "@type": string } & Record<string, unknown>)[];
  };
}
