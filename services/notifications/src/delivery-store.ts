import { sql, type ExpressionBuilder, type Kysely } from "kysely";
import type { DB, DeliveryRow, DeliveryStatusValue, NewDelivery } from "./db/schema.js";
import { PENDING_STATUSES } from "./delivery.js";

// Queries over `deliveries`. Each takes the pool or a transaction.

/** Inserts the delivery unless its idempotency key exists; answers the row that holds the key. */
export async function insertDeliveryOnce(
  db: Kysely<DB>,
  row: NewDelivery,
): Promise<{ delivery: DeliveryRow; created: boolean }> {
  const inserted = await db
    .insertInto("deliveries")
    .values(row)
    .onConflict((oc) => oc.column("idempotency_key").doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted !== undefined) return { delivery: inserted, created: true };
  const existing = await db
    .selectFrom("deliveries")
    .selectAll()
    .where("idempotency_key", "=", row.idempotency_key)
    .executeTakeFirstOrThrow();
  return { delivery: existing, created: false };
}

export async function findDelivery(db: Kysely<DB>, id: string): Promise<DeliveryRow | undefined> {
  return db.selectFrom("deliveries").selectAll().where("id", "=", id).executeTakeFirst();
}

/**
 * The next due delivery, locked for the caller's transaction; rows other workers hold are
 * skipped. The lock lasts until the transaction ends — the send happens inside it, so a crash
 * anywhere before the commit releases the row to the next worker (Postgres aborts the dead
 * session's transaction as soon as its connection drops).
 */
export async function lockNextDueDelivery(db: Kysely<DB>): Promise<DeliveryRow | undefined> {
  return db
    .selectFrom("deliveries")
    .selectAll()
    .where("status", "in", [...PENDING_STATUSES])
    .where("next_attempt_at", "<=", sql<Date>`now()`)
    .orderBy("next_attempt_at")
    .orderBy("id")
    .limit(1)
    .forUpdate()
    .skipLocked()
    .executeTakeFirst();
}

/** When the next pending delivery falls due (undefined when none is pending). */
export async function nextDueTime(db: Kysely<DB>): Promise<Date | undefined> {
  const row = await db
    .selectFrom("deliveries")
    .select((eb) => eb.fn.min("next_attempt_at").as("due"))
    .where("status", "in", [...PENDING_STATUSES])
    .executeTakeFirst();
  return row?.due ?? undefined;
}

export async function markSent(
  db: Kysely<DB>,
  row: DeliveryRow,
  opts: { eraseBody: boolean },
): Promise<void> {
  await db
    .updateTable("deliveries")
    .set({
      status: "sent",
      attempts: row.attempts + 1,
      sent_at: new Date(),
      updated_at: new Date(),
      last_error: null,
      // A secret (a verification code) had to wait here until it was sent; not a moment longer.
      ...(opts.eraseBody ? { html_body: null, text_body: null } : {}),
    })
    .where("id", "=", row.id)
    .execute();
}

export async function markRetry(
  db: Kysely<DB>,
  row: DeliveryRow,
  opts: { status: DeliveryStatusValue; nextAttemptAt: Date; error: string | null; countAttempt: boolean },
): Promise<void> {
  await db
    .updateTable("deliveries")
    .set({
      status: opts.status,
      next_attempt_at: opts.nextAttemptAt,
      updated_at: new Date(),
      ...(opts.countAttempt ? { attempts: row.attempts + 1 } : {}),
      ...(opts.error === null ? {} : { last_error: opts.error }),
    })
    .where("id", "=", row.id)
    .execute();
}

export async function markFailed(db: Kysely<DB>, row: DeliveryRow, error: string): Promise<void> {
  await db
    .updateTable("deliveries")
    .set({
      status: "failed",
      attempts: row.attempts + 1,
      last_error: error,
      updated_at: new Date(),
      ...(row.contains_secret ? { html_body: null, text_body: null } : {}),
    })
    .where("id", "=", row.id)
    .execute();
}

/** FAILED → QUEUED (due now, attempts reset); undefined when the delivery is not FAILED. */
export async function requeueFailed(db: Kysely<DB>, id: string): Promise<DeliveryRow | undefined> {
  return (
    db
      .updateTable("deliveries")
      .set({ status: "queued", attempts: 0, next_attempt_at: new Date(), updated_at: new Date() })
      .where("id", "=", id)
      .where("status", "=", "failed")
      // A message whose body is gone (a sent-and-erased secret, an erased user) cannot be resent.
      .where((eb) => eb.or([eb("html_body", "is not", null), eb("text_body", "is not", null)]))
      .returningAll()
      .executeTakeFirst()
  );
}

export interface DeliveryFilter {
  status?: DeliveryStatusValue;
  template?: string;
  recipient?: string;
  userId?: string;
}

/**
 * Newest first, after the cursor when given. Ordered by id: UUIDv7 ids sort by creation time, and
 * unlike `created_at` (microseconds in Postgres, milliseconds in JavaScript) they survive a round
 * trip through a page token exactly.
 */
export async function listDeliveries(
  db: Kysely<DB>,
  opts: { limit: number; filter: DeliveryFilter; afterId?: string },
): Promise<DeliveryRow[]> {
  let q = db.selectFrom("deliveries").selectAll();
  const { filter } = opts;
  if (filter.status !== undefined) q = q.where("status", "=", filter.status);
  if (filter.template !== undefined) q = q.where("template", "=", filter.template);
  if (filter.recipient !== undefined) q = q.where("recipient", "=", filter.recipient);
  if (filter.userId !== undefined) q = q.where("user_id", "=", filter.userId);
  if (opts.afterId !== undefined) q = q.where("id", "<", opts.afterId);
  return q.orderBy("id", "desc").limit(opts.limit).execute();
}

/** A user's deliveries, by user id or by their address (mail sent before we knew the id). */
export async function findDeliveriesOfUser(
  db: Kysely<DB>,
  userId: string,
  emails: readonly string[],
): Promise<DeliveryRow[]> {
  return db
    .selectFrom("deliveries")
    .selectAll()
    .where(ofUser(userId, emails))
    .orderBy("created_at")
    .execute();
}

function ofUser(userId: string, emails: readonly string[]) {
  return (eb: ExpressionBuilder<DB, "deliveries">) =>
    emails.length === 0
      ? eb("user_id", "=", userId)
      : eb.or([eb("user_id", "=", userId), eb("recipient", "in", [...emails])]);
}

export const ERASED_RECIPIENT = "erased@invalid";

/**
 * GDPR erasure: the user's deliveries keep their status and counts (statistics) but lose the
 * address, the variables and the bodies; pending ones are cancelled (FAILED, "recipient erased").
 */
export async function eraseDeliveriesOfUser(
  db: Kysely<DB>,
  userId: string,
  emails: readonly string[],
): Promise<number> {
  const matchUser = ofUser(userId, emails);
  await db
    .updateTable("deliveries")
    .set({ status: "failed", last_error: "recipient erased (account deleted)", updated_at: new Date() })
    .where(matchUser)
    .where("status", "in", [...PENDING_STATUSES])
    .execute();
  const result = await db
    .updateTable("deliveries")
    .set({
      recipient: ERASED_RECIPIENT,
      user_id: null,
      subject: "[erased]",
      html_body: null,
      text_body: null,
      variables: "{}",
      updated_at: new Date(),
    })
    .where(matchUser)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
