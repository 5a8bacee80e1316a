import type { Kysely } from "kysely";
import type { DB, RecipientRow } from "./db/schema.js";

// The address book: user id → email and name, filled from auth's UserRegistered events, so mail
// about a user's payments reaches them without a call to auth (which may be down) and without
// reading another service's database. UserDeleted removes the entry and leaves a tombstone, so an
// event about that user handled late (retries reorder events) neither re-adds nor mails them.

export async function upsertRecipient(
  db: Kysely<DB>,
  row: { user_id: string; email: string; first_name: string; last_name: string },
): Promise<void> {
  await db
    .insertInto("recipients")
    .values({ ...row, updated_at: new Date() })
    .onConflict((oc) =>
      oc.column("user_id").doUpdateSet({
        email: row.email,
        first_name: row.first_name,
        last_name: row.last_name,
        updated_at: new Date(),
      }),
    )
    .execute();
}

export async function findRecipient(db: Kysely<DB>, userId: string): Promise<RecipientRow | undefined> {
  return db.selectFrom("recipients").selectAll().where("user_id", "=", userId).executeTakeFirst();
}

/** Removes the user's entry and records the tombstone; answers the removed entry. */
export async function eraseRecipient(db: Kysely<DB>, userId: string): Promise<RecipientRow | undefined> {
  await db
    .insertInto("erased_users")
    .values({ user_id: userId })
    .onConflict((oc) => oc.column("user_id").doNothing())
    .execute();
  return db.deleteFrom("recipients").where("user_id", "=", userId).returningAll().executeTakeFirst();
}

export async function isErased(db: Kysely<DB>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom("erased_users")
    .select("user_id")
    .where("user_id", "=", userId)
    .executeTakeFirst();
  return row !== undefined;
}
