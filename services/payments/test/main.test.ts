import { fileURLToPath } from "node:url";
import { createDb } from "@zero/kit/db";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { freePort } from "@zero/testkit/ports";
import { startServiceProcess } from "@zero/testkit/service-process";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WEBHOOK_SECRET } from "./fixtures.js";

// main.ts as the start script runs it: a real process, real signals, real exit codes.

const serviceDir = fileURLToPath(new URL("..", import.meta.url));
let database: TestDatabase;
let nats: TestNats;

beforeAll(async () => {
  database = await createTestDatabase("payments_main");
  nats = await startNats();
});

afterAll(async () => {
  await nats?.stop();
  await database?.drop();
});

const run = (args: string[], env: Record<string, string>) => startServiceProcess({ serviceDir, args, env });

describe("main.ts", () => {
  it("reports every configuration problem at once, without echoing secrets, and exits 1", async () => {
    const proc = run([], {
      PORT: "not-a-port",
      DATABASE_URL: database.url,
      PAYMENTS_WEBHOOK_SECRETS: "short-secret",
    });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toMatch(/PORT must be an integer/);
    expect(proc.stderr()).toMatch(/PAYMENTS_WEBHOOK_SECRETS: every secret must be at least 16 characters/);
    expect(proc.stderr()).not.toContain("short-secret");
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
        expect.arrayContaining([
          "payments",
          "payment_transitions",
          "refunds",
          "idempotency_keys",
          "provider_events",
          "kit_outbox",
        ]),
      );
    } finally {
      await db.destroy();
    }
  });

  it("serves until SIGTERM, then drains and exits 0", async () => {
    const port = await freePort();
    const proc = run([], {
      PORT: String(port),
      DATABASE_URL: database.url,
      NATS_URL: nats.url,
      PAYMENTS_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    });
    const base = `http://127.0.0.1:${port}`;
    await proc.waitForReadyz(base);
    // An anonymous call is refused by the access policy, not by a crash.
    const anonymous = await fetch(`${base}/zero.payments.v1.PaymentService/ListPayments`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(anonymous.status).toBe(401);

    const stopped = await proc.terminate();
    expect(stopped.code, proc.stderr()).toBe(0);
    expect(stopped.ms).toBeLessThan(10_000);
  });
});
