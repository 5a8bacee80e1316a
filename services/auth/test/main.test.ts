import { createDb } from "@zero/kit/db";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { freePort } from "@zero/testkit/ports";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aKeyEncryptionKey } from "./fixtures.js";

// main.ts as the start script runs it: a real process, real signals, real exit codes.

const serviceDir = fileURLToPath(new URL("..", import.meta.url));
let database: TestDatabase;
let nats: TestNats;

beforeAll(async () => {
  database = await createTestDatabase("auth_main");
  nats = await startNats();
});

afterAll(async () => {
  await nats?.stop();
  await database?.drop();
});

async function pgTables(url: string): Promise<string[]> {
  const db = createDb(url);
  try {
    const { rows } = await sql<{
      name: string;
    }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(db);
    return rows.map((r) => r.name);
  } finally {
    await db.destroy();
  }
}

function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: serviceDir,
    // Only what the test gives: the developer's own variables must not leak into the check.
    env: { PATH: process.env["PATH"] ?? "", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.resume();
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return { child, exited, stderr: () => stderr };
}

describe("main.ts", () => {
  it("reports every configuration problem at once and exits 1", async () => {
    const proc = run([], { PORT: "not-a-port", DATABASE_URL: database.url });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(/PORT must be an integer/);
    expect(proc.stderr()).toMatch(/AUTH_KEY_ENCRYPTION_KEY is required/);
  });

  it("`migrate` applies the migrations and exits 0", async () => {
    const proc = run(["migrate"], { DATABASE_URL: database.url });
    expect(await proc.exited, proc.stderr()).toBe(0);
    expect(await pgTables(database.url)).toEqual(
      expect.arrayContaining(["users", "refresh_tokens", "signing_keys", "kit_outbox"]),
    );
  });

  it("serves until SIGTERM, then drains and exits 0", async () => {
    const port = await freePort();
    const proc = run([], {
      PORT: String(port),
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      AUTH_KEY_ENCRYPTION_KEY: aKeyEncryptionKey(),
    });
    const base = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ready = await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline || proc.child.exitCode !== null)
        throw new Error(`auth never became ready:\n${proc.stderr()}`);
      await sleep(100);
    }
    const jwks = await fetch(`${base}/zero.auth.v1.AuthService/GetJwks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(jwks.status).toBe(200);

    const stoppedAt = Date.now();
    proc.child.kill("SIGTERM");
    expect(await proc.exited, proc.stderr()).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
  });
});
