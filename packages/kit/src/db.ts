import { Kysely, Migrator, PostgresDialect, sql, type Migration } from "kysely";
import pg from "pg";
import type { Logger } from "pino";

export type { Migration } from "kysely";

const INT8_OID = 20;
const DATE_OID = 1082;

/**
 * Column types as they come back (per pool, so nothing global is changed):
 * - `int8`/`bigint` → string: values above 2^53 would silently lose precision as numbers.
 *   Store money as int8 and convert with `BigInt(value)` where arithmetic is needed.
 * - `date` → the `YYYY-MM-DD` string: pg's default turns it into a local-midnight Date.
 * - `timestamptz` → Date (pg's default), `numeric` → string (pg's default).
 */
function getTypeParser(oid: number, format: "text" | "binary" = "text"): (value: string) => unknown {
  if (format === "text" && (oid === INT8_OID || oid === DATE_OID)) return (value) => value;
  return pg.types.getTypeParser(oid, format) as (value: string) => unknown;
}
const types: pg.CustomTypesConfig = { getTypeParser };

export interface DbOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Where errors of idle connections go (without a listener pg would crash the process). */
  logger?: Logger;
}

/** A kysely instance over a pg Pool. `db.destroy()` closes the pool. */
export function createDb<DB>(url: string, opts: DbOptions = {}): Kysely<DB> {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types });
  // A server restart or a killed backend emits this on an idle client; the pool replaces it.
  pool.on("error", (err) => opts.logger?.warn({ err }, "postgres: idle connection failed"));
  // A checked-out client that loses its backend between two queries (a transaction waiting on
  // something else: the relay publishing, a provider call) emits `error` on itself, which the pool
  // does not listen to while the client is out — unheard, it would crash the process. Its next query
  // fails ("not queryable"), the transaction rolls back as usual, and the pool drops the client.
  pool.on("connect", (client) => {
    client.on("error", (err) =>
      opts.logger?.warn({ err }, "postgres: connection failed while in use (its transaction rolls back)"),
    );
  });
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Applies every migration in `migrations` not applied yet, in name order, all in one transaction
 * (Postgres DDL is transactional: a failure applies none of them); throws when one fails. Name them so they sort in order (`0000_kit_outbox`,
 * `0001_users`, …): kysely refuses a new migration that sorts before an applied one. Safe to run
 * from several replicas at once (kysely takes a lock row). The record is passed explicitly because
 * kysely's FileMigrationProvider cannot import `.ts` files under vitest.
 */
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  migrations: Record<string, Migration>,
  logger?: Logger,
): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === "Success") logger?.info({ migration: result.migrationName }, "migration applied");
    if (result.status === "Error") logger?.error({ migration: result.migrationName }, "migration failed");
  }
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    const reason = error instanceof Error ? error.message : "unknown error (see cause)";
    throw new Error(`migration ${failed ?? "(set-up)"} failed: ${reason}`, { cause: error });
  }
}

/** Readiness probe: one round trip through the pool. */
export async function checkDb<DB>(db: Kysely<DB>): Promise<void> {
  await sql`select 1`.execute(db);
}
