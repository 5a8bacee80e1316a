import { sql, type Kysely, type Updateable } from "kysely";
import type { DB, NewRefund, RefundRow, RefundsTable } from "./db/schema.js";

// Queries over `refunds`. Each takes the pool or a transaction.

export async function insertRefund(db: Kysely<DB>, refund: NewRefund): Promise<RefundRow> {
  return db.insertInto("refunds").values(refund).returningAll().executeTakeFirstOrThrow();
}

export async function updateRefund(
  db: Kysely<DB>,
  id: string,
  patch: Updateable<RefundsTable>,
): Promise<RefundRow> {
  return db
    .updateTable("refunds")
    .set({ ...patch, updated_at: sql<Date>`now()` })
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function listRefunds(db: Kysely<DB>, paymentId: string): Promise<RefundRow[]> {
  return db.selectFrom("refunds").selectAll().where("payment_id", "=", paymentId).orderBy("id").execute();
}

/**
 * Money promised back: succeeded refunds plus pending ones. Read under the payment's row lock, so
 * two concurrent refunds cannot both fit in the same remainder.
 */
export async function committedRefundTotal(db: Kysely<DB>, paymentId: string): Promise<bigint> {
  const row = await db
    .selectFrom("refunds")
    .select(sql<string>`coalesce(sum(amount), 0)::text`.as("total"))
    .where("payment_id", "=", paymentId)
    .where("status", "in", ["pending", "succeeded"])
    .executeTakeFirstOrThrow();
  return BigInt(row.total);
}
