import { sql, type Kysely } from "kysely";
import type { DB } from "./db/schema.js";

/**
 * Serialises writes to one user's data until the transaction ends: address defaults ("at most one
 * per user") and erasure ("nothing written after it") need it, and a user may have no profile
 * row to lock yet. A Postgres advisory lock on a hash of the id: a collision only makes two users
 * wait for each other briefly.
 */
export async function lockUser(trx: Kysely<DB>, userId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${userId}, 7))`.execute(trx);
}
