import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@zero/testkit/ports";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson } from "./platform.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A real process, as the start script runs it. */
function startProcess(
  entry: string,
  env: Record<string, string>,
): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exit };
}

async function waitReady(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

let database: TestDatabase;
let nats: TestNats;
let redis: TestRedis;
beforeAll(async () => {
  database = await createTestDatabase("e2e_shutdown");
  nats = await startNats();
  redis = await startRedis();
});
afterAll(async () => {
  await nats?.stop();
  await redis?.stop();
  await database?.drop();
});

describe("SIGTERM during a burst of requests", () => {
  test("in-flight calls complete and every process exits 0 within 10 s", async () => {
    const authPort = await freePort();
    const gatewayPort = await freePort();
    const auth = startProcess("services/auth/src/main.ts", {
      PORT: String(authPort),
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    });
    const gateway = startProcess("gateway/src/main.ts", {
      PORT: String(gatewayPort),
      AUTH_URL: `http://127.0.0.1:${authPort}`,
      REDIS_URL: redis.url,
      // The burst below is one client registering 31 accounts: the edge's register limit would
      // (rightly) answer 429. This test is about shutdown, so the limiter is off here.
      RATE_LIMIT_ENABLED: "false",
    });
    const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    try {
      await waitReady(`http://127.0.0.1:${authPort}`);
      await waitReady(gatewayUrl);

      // Warm: the gateway's upstream session to auth is open, as on a platform that has been serving.
      expect((await postJson(`${gatewayUrl}/v1/auth/register`, aRegistration())).status).toBe(201);

      // 30 registrations: argon2 makes each take tens of milliseconds, so many are in flight.
      const burst = Array.from({ length: 30 }, () =>
        postJson(`${gatewayUrl}/v1/auth/register`, aRegistration()),
      );
      await new Promise((r) => setTimeout(r, 100));
      const signalledAt = Date.now();
      gateway.child.kill("SIGTERM");
      auth.child.kill("SIGTERM");

      // A failed request is reported by its status or network error, so the assertion shows all of them.
      const results = await Promise.all(
        burst.map((request) =>
          request.then(
            (r) => r.status,
            (e: Error) => String((e.cause as Error | undefined)?.message ?? e.message),
          ),
        ),
      );
      expect(results).toEqual(results.map(() => 201));
      const [gatewayCode, authCode] = await Promise.all([gateway.exit, auth.exit]);
      const elapsed = Date.now() - signalledAt;
      expect({ gatewayCode, authCode }, gateway.output() + auth.output()).toEqual({
        gatewayCode: 0,
        authCode: 0,
      });
      expect(elapsed).toBeLessThan(10_000);
    } finally {
      gateway.child.kill("SIGKILL");
      auth.child.kill("SIGKILL");
    }
  });
});
