import type { Kysely } from "kysely";
import type { DB, NewUser, UserRow } from "./db/schema.js";

// Queries over `users`. Each takes the pool or a transaction (a kysely Transaction is a Kysely).

export async function insertUser(db: Kysely<DB>, user: NewUser): Promise<UserRow> {
  return db.insertInto("users").values(user).returningAll().executeTakeFirstOrThrow();
}

/** `email` must already be normalised (see credentials.ts). */
export async function findUserByEmail(db: Kysely<DB>, email: string): Promise<UserRow | undefined> {
  return db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirst();
}

/** True when `error` is Postgres refusing a second account for the same email. */
export function isDuplicateEmail(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    (error as { code?: unknown }).code === "23505" &&
    (error as { constraint?: unknown }).constraint === "users_email_key"
  );
}
