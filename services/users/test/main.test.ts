import { connect } from "@nats-io/transport-node";
import { createDb } from "@zero/kit/db";
import { ensureStream } from "@zero/kit/events/streams";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { freePort } from "@zero/testkit/ports";
import { startServiceProcess } from "@zero/testkit/service-process";
import { sql } from "kysely";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// main.ts as the start script runs it: a real process, real signals, real exit codes.

const serviceDir = fileURLToPath(new URL("..", import.meta.url));
let database: TestDatabase;
let nats: TestNats;

beforeAll(async () => {
  [database, nats] = await Promise.all([createTestDatabase("users_main"), startNats()]);
});

afterAll(async () => {
  await nats?.stop();
  await database?.drop();
});

const run = (args: string[], env: Record<string, string>) => startServiceProcess({ serviceDir, args, env });

describe("main.ts", () => {
  it("reports every configuration problem at once and exits 1", async () => {
    const proc = run([], { PORT: "-1", DATABASE_URL: database.url, EXPORT_TIMEOUT_MS: "soon" });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(/PORT must be at least 0/);
    expect(proc.stderr()).toMatch(/SERVICE_CLIENT_SECRET is required/);
    expect(proc.stderr()).toMatch(/EXPORT_TIMEOUT_MS must be an integer/);
  });

  it("`migrate` applies the migrations and exits 0", async () => {
    const proc = run(["migrate"], { DATABASE_URL: database.url });
    expect(await proc.exited, proc.stderr()).toBe(0);
    const db = createDb(database.url);
    try {
      const { rows } = await sql<{
        name: string;
      }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(db);
      expect(rows.map((r) => r.name)).toEqual(
        expect.arrayContaining(["profiles", "addresses", "erased_users", "kit_inbox", "kit_outbox"]),
      );
    } finally {
      await db.destroy();
    }
  });

  it("serves, turns ready once auth's stream exists, and drains on SIGTERM", async () => {
    const port = await freePort();
    const proc = run([], {
      PORT: String(port),
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      AUTH_URL: "http://127.0.0.1:1",
      SERVICE_CLIENT_SECRET: "not-used-here",
    });
    const base = `http://127.0.0.1:${port}`;
    // Listening but not ready: auth has not created ZERO_AUTH yet, so nothing consumes its events.
    expect(await proc.waitForReadyz(base, { accept: (status) => status !== 0 })).toBe(503);
    const nc = await connect({ servers: nats.url });
    await ensureStream(nc, { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] });
    await nc.close();
    await proc.waitForReadyz(base);
    // A USER method without a token: refused by the kit, not crashed.
    const anonymous = await fetch(`${base}/zero.users.v1.UserService/GetProfile`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: "me" }),
    });
    expect(anonymous.status).toBe(401);

    const stopped = await proc.terminate();
    expect(stopped.code, proc.stderr()).toBe(0);
    expect(stopped.ms).toBeLessThan(10_000);
  });
});
