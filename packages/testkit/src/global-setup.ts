import { testDatabaseUrl } from "./config.js";
import { TEST_DATABASE_PATTERN, withAdminClient } from "./postgres.js";

const STALE_AFTER_SECONDS = 60 * 60;

/**
 * Runs once before the whole vitest run: fails fast with a clear message when Postgres is not
 * there, and drops test databases that crashed runs left behind (older than an hour, so a
 * parallel run's databases are never touched).
 */
export default async function setup(): Promise<void> {
  const names = await withAdminClient(async (client) => {
    const result = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'zero\\_test\\_%'",
    );
    return result.rows.map((row) => row.datname);
  }).catch((err: unknown) => {
    const safeUrl = new URL(testDatabaseUrl);
    safeUrl.password = "";
    throw new Error(
      `Postgres does not answer at ${safeUrl.toString()} (ZERO_TEST_DATABASE_URL): ${String(err)}. ` +
        "Start the infrastructure with `scripts/infra.sh`, or point ZERO_TEST_DATABASE_URL at a server " +
        "where this user may CREATE DATABASE.",
    );
  });

  const now = Date.now() / 1000;
  const stale = names.filter((name) => {
    const created = TEST_DATABASE_PATTERN.exec(name)?.[1];
    return created !== undefined && now - parseInt(created, 36) > STALE_AFTER_SECONDS;
  });
  if (stale.length === 0) return;
  await withAdminClient(async (client) => {
    for (const name of stale) {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
  });
}
