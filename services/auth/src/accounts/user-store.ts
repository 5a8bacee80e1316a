import { sql, type Kysely, type Updateable } from "kysely";
import type { DB, NewUser, UserRow, UsersTable, UserStatusValue } from "../db/schema.js";

// Queries over `users`. Each takes the pool or a transaction (a kysely Transaction is a Kysely).

export async function insertUser(db: Kysely<DB>, user: NewUser): Promise<UserRow> {
  return db.insertInto("users").values(user).returningAll().executeTakeFirstOrThrow();
}

/** `email` must already be normalised (see credentials.ts). */
export async function findUserByEmail(db: Kysely<DB>, email: string): Promise<UserRow | undefined> {
  return db.selectFrom("users").selectAll().where("email", "=", email).executeTakeFirst();
}

/** Ids that are not UUIDs find nothing (rather than a Postgres error). */
export async function findUserById(db: Kysely<DB>, id: string): Promise<UserRow | undefined> {
  if (!isUuid(id)) return undefined;
  return db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
}

/** The row locked for the rest of the transaction (concurrent admin changes apply in order). */
export async function lockUserById(db: Kysely<DB>, id: string): Promise<UserRow | undefined> {
  if (!isUuid(id)) return undefined;
  return db.selectFrom("users").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
}

export async function updateUser(
  db: Kysely<DB>,
  id: string,
  changes: Updateable<UsersTable>,
): Promise<UserRow> {
  return db.updateTable("users").set(changes).where("id", "=", id).returningAll().executeTakeFirstOrThrow();
}

export interface UserFilter {
  emailContains?: string;
  role?: string;
  status?: UserStatusValue;
}

/** Newest first; `after` is the last row of the previous page. */
export async function listUsers(
  db: Kysely<DB>,
  filter: UserFilter,
  page: { size: number; after?: { createdAt: Date; id: string } },
): Promise<UserRow[]> {
  let query = db.selectFrom("users").selectAll();
  if (filter.emailContains !== undefined) {
    // LIKE's wildcards in the filter are literal text.
    const escaped = filter.emailContains.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`);
    query = query.where("email", "like", `%${escaped}%`);
  }
  if (filter.role !== undefined) query = query.where(sql<boolean>`${filter.role} = any(roles)`);
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  if (page.after !== undefined) {
    query = query.where(sql<boolean>`(created_at, id) < (${page.after.createdAt}, ${page.after.id})`);
  }
  return query.orderBy("created_at", "desc").orderBy("id", "desc").limit(page.size).execute();
}

/** Active accounts holding the admin role (the last one must keep it). */
export async function countActiveAdmins(db: Kysely<DB>): Promise<number> {
  const row = await db
    .selectFrom("users")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where(sql<boolean>`'admin' = any(roles)`)
    .where("status", "=", "active")
    .executeTakeFirstOrThrow();
  return Number(row.n);
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

export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
