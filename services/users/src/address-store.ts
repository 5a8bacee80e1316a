import type { Kysely } from "kysely";
import type { AddressFields } from "./address.js";
import type { AddressRow, DB } from "./db/schema.js";

// Queries over `addresses`, always scoped by user: an address id alone never finds a row, so
// another user's id behaves exactly like one that does not exist.

export async function findAddress(
  db: Kysely<DB>,
  userId: string,
  id: string,
): Promise<AddressRow | undefined> {
  return db
    .selectFrom("addresses")
    .selectAll()
    .where("user_id", "=", userId)
    .where("id", "=", id)
    .executeTakeFirst();
}

/** Oldest first (UUIDv7 ids sort by creation); `after` is the previous page's last id. */
export async function listAddresses(
  db: Kysely<DB>,
  userId: string,
  opts: { after?: string | undefined; limit: number },
): Promise<AddressRow[]> {
  let query = db.selectFrom("addresses").selectAll().where("user_id", "=", userId);
  if (opts.after !== undefined) query = query.where("id", ">", opts.after);
  return query.orderBy("id").limit(opts.limit).execute();
}

export async function listAllAddresses(db: Kysely<DB>, userId: string): Promise<AddressRow[]> {
  return db.selectFrom("addresses").selectAll().where("user_id", "=", userId).orderBy("id").execute();
}

export async function countAddresses(db: Kysely<DB>, userId: string): Promise<number> {
  const { count } = await db
    .selectFrom("addresses")
    .select((eb) => eb.fn.countAll<string>().as("count"))
    .where("user_id", "=", userId)
    .executeTakeFirstOrThrow();
  return Number(count);
}

/** Takes the default marks `fields` sets off the user's other addresses (call under the user lock). */
export async function clearOtherDefaults(
  db: Kysely<DB>,
  userId: string,
  fields: Pick<AddressFields, "default_shipping" | "default_billing">,
  exceptId: string,
): Promise<void> {
  const now = new Date();
  if (fields.default_shipping) {
    await db
      .updateTable("addresses")
      .set({ default_shipping: false, updated_at: now })
      .where("user_id", "=", userId)
      .where("default_shipping", "=", true)
      .where("id", "!=", exceptId)
      .execute();
  }
  if (fields.default_billing) {
    await db
      .updateTable("addresses")
      .set({ default_billing: false, updated_at: now })
      .where("user_id", "=", userId)
      .where("default_billing", "=", true)
      .where("id", "!=", exceptId)
      .execute();
  }
}

export async function insertAddress(
  db: Kysely<DB>,
  address: AddressFields & { id: string; user_id: string },
): Promise<AddressRow> {
  return db
    .insertInto("addresses")
    .values({ ...address, updated_at: new Date() })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateAddress(
  db: Kysely<DB>,
  userId: string,
  id: string,
  fields: AddressFields,
): Promise<AddressRow> {
  return db
    .updateTable("addresses")
    .set({ ...fields, updated_at: new Date() })
    .where("user_id", "=", userId)
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** True when a row was deleted. */
export async function deleteAddress(db: Kysely<DB>, userId: string, id: string): Promise<boolean> {
  const row = await db
    .deleteFrom("addresses")
    .where("user_id", "=", userId)
    .where("id", "=", id)
    .returning("id")
    .executeTakeFirst();
  return row !== undefined;
}

export async function deleteAllAddresses(db: Kysely<DB>, userId: string): Promise<void> {
  await db.deleteFrom("addresses").where("user_id", "=", userId).execute();
}
