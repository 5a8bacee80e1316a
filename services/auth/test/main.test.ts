import { createDb } from "@zero/kit/db";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { freePort } from "@zero/testkit/ports";
import { startServiceProcess } from "@zero/testkit/service-process";
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

const run = (args: string[], env: Record<string, string>) => startServiceProcess({ serviceDir, args, env });

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
      expect.arrayContaining([
        "users",
        "sessions",
        "refresh_tokens",
        "signing_keys",
        "kit_outbox",
        "deleted_users",
      ]),
    );
  });

  it("`create-admin` creates an admin from a password on stdin or in the environment, and never promotes silently", async () => {
    const created = run(["create-admin", "--email", "Ops@Example.com"], {
      DATABASE_URL: database.url,
      AUTH_ADMIN_PASSWORD: "an operator passphrase",
    });
    expect(await created.exited, created.stderr()).toBe(0);
    const db = createDb(database.url);
    try {
      const { rows } = await sql<{
        roles: string[];
      }>`select roles from users where email = 'ops@example.com'`.execute(db);
      expect(rows).toEqual([{ roles: ["customer", "admin"] }]);
      await sql`insert into users (id, email, password_hash) values (gen_random_uuid(), 'plain@example.com', 'x')`.execute(
        db,
      );
    } finally {
      await db.destroy();
    }
    const refused = run(["create-admin", "--email", "plain@example.com"], {
      DATABASE_URL: database.url,
      AUTH_ADMIN_PASSWORD: "an operator passphrase",
    });
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toMatch(/exists and is not an admin.*--promote/);
    const promoted = run(["create-admin", "--email", "plain@example.com", "--promote"], {
      DATABASE_URL: database.url,
      AUTH_ADMIN_PASSWORD: "an operator passphrase",
    });
    expect(await promoted.exited, promoted.stderr()).toBe(0);
    const weak = run(["create-admin", "--email", "weak@example.com"], {
      DATABASE_URL: database.url,
      AUTH_ADMIN_PASSWORD: "password1234",
    });
    expect(await weak.exited).toBe(1);
    expect(weak.stderr()).toMatch(/password .*common/);
  });

  it("`rotate-signing-key --now` makes a new active key and keeps the old one passive", async () => {
    const kek = aKeyEncryptionKey();
    const env = { DATABASE_URL: database.url, AUTH_KEY_ENCRYPTION_KEY: kek };
    const db = createDb(database.url);
    try {
      await sql`delete from signing_keys`.execute(db);
      const first = run(["rotate-signing-key"], env);
      expect(await first.exited, first.stderr()).toBe(0);
      const now = run(["rotate-signing-key", "--now"], env);
      expect(await now.exited, now.stderr()).toBe(0);
      const { rows } = await sql<{
        status: string;
      }>`select status from signing_keys order by created_at`.execute(db);
      // The first run made the first key (active) and the next one (pending); --now activated that one.
      expect(rows.map((r) => r.status)).toEqual(["passive", "active"]);
      expect(now.stdout()).toMatch(/signing key .+: active/);
    } finally {
      // Sealed under this test's key: the next test starts with its own.
      await sql`delete from signing_keys`.execute(db);
      await db.destroy();
    }
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
    await proc.waitForReadyz(base);
    const jwks = await fetch(`${base}/zero.auth.v1.AuthService/GetJwks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(jwks.status).toBe(200);

    const stopped = await proc.terminate();
    expect(stopped.code, proc.stderr()).toBe(0);
    expect(stopped.ms).toBeLessThan(10_000);
  });
});
