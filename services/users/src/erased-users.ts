import type { Kysely } from "kysely";
import { createHash } from "node:crypto";
import type { DB } from "./db/schema.js";

// Who has been erased, without remembering who they were: a SHA-256 of the user id. UUIDv7 ids
// carry 74 random bits, so the hash cannot be reversed by trying ids; it only lets the service
// recognise the id when it comes back (a late or replayed UserRegistered, a still-valid token).

function userIdHash(userId: string): Buffer {
  return createHash("sha256").update(userId.toLowerCase()).digest();
}

export async function markErased(db: Kysely<DB>, userId: string): Promise<void> {
  await db
    .insertInto("erased_users")
    .values({ user_id_hash: userIdHash(userId) })
    .onConflict((oc) => oc.column("user_id_hash").doNothing())
    .execute();
}

export async function isErased(db: Kysely<DB>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom("erased_users")
    .select("erased_at")
    .where("user_id_hash", "=", userIdHash(userId))
    .executeTakeFirst();
  return row !== undefined;
}
