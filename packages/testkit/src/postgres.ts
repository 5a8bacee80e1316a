import { randomBytes } from "node:crypto";
import pg from "pg";
import { testDatabaseUrl } from "./config.js";

export interface TestDatabase {
  /** Connection URL of the new, empty database. */
  url: string;
  /** Drops it, closing any connection still open (`WITH (FORCE)`). */
  drop(): Promise<void>;
}

/** Names are `zero_test_<prefix>_<created, base36 seconds>_<random>`: global-setup reads the time to drop stale ones. */
export const TEST_DATABASE_PATTERN = /^zero_test_[a-z0-9_]*_([0-9a-z]+)_[0-9a-f]{8}$/;

/** A fresh database on the running Postgres server (one per test file, so files run in parallel). */
export async function createTestDatabase(prefix = "t"): Promise<TestDatabase> {
  const safePrefix = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, "_")
    .slice(0, 24);
  const created = Math.floor(Date.now() / 1000).toString(36);
  const name = `zero_test_${safePrefix}_${created}_${randomBytes(4).toString("hex")}`;
  await withAdminClient((client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdminClient((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

/** Runs `fn` with a client connected to the server's maintenance database. */
export async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testDatabaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
