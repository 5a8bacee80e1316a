import { insertOutboxEntry, type OutboxEntry } from "@zero/kit/events/outbox";
import { sql, type Kysely, type QueryCreator } from "kysely";
import type { DB, PaymentRow, PaymentStatusName, PaymentsTable, TransitionRow } from "./db/schema.js";
import type { Updateable } from "kysely";
import type { CompletedKey } from "./idempotency.js";

// Queries over `payments` and `payment_transitions`. Each takes the pool or a transaction (a kysely
// Transaction is a Kysely). Deleted payments are invisible to every lookup but `lockPaymentById`,
// which the erasure and the admin paths use.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Inserts a new payment — built here with its timestamps, so its response is known before the
 * insert — with, in the same statement, its outbox event and its completed idempotency key when
 * given: one round trip, all or nothing (a duplicate key fails the whole statement).
 */
export async function insertPayment(
  db: Kysely<DB>,
  payment: PaymentRow,
  with_: { event?: OutboxEntry; completedKey?: CompletedKey } = {},
): Promise<void> {
  // The CTEs only add rows; the final insert reads none of them, hence the widened type's cast.
  let query: QueryCreator<DB> = db;
  const { event, completedKey } = with_;
  if (completedKey !== undefined) {
    query = query.with("idempotency_key", (q) =>
      q.insertInto("idempotency_keys").values(completedKey),
    ) as unknown as QueryCreator<DB>;
  }
  if (event !== undefined)
    query = query.with("event", (q) => insertOutboxEntry(q, event)) as unknown as QueryCreator<DB>;
  await query
    .insertInto("payments")
    .values({ ...payment, metadata: JSON.stringify(payment.metadata) })
    .execute();
}

/** By id (UUID) or reference (`pay_…`); undefined for a malformed, unknown or deleted one. */
export async function findPayment(
  db: Kysely<DB>,
  idOrReference: string,
  opts: { forUpdate?: boolean } = {},
): Promise<PaymentRow | undefined> {
  let query = db.selectFrom("payments").selectAll().where("deleted_at", "is", null);
  if (UUID.test(idOrReference)) query = query.where("id", "=", idOrReference.toLowerCase());
  else if (idOrReference.startsWith("pay_")) query = query.where("reference", "=", idOrReference);
  else return undefined;
  if (opts.forUpdate) query = query.forUpdate();
  return query.executeTakeFirst();
}

export async function findPaymentByProviderId(
  db: Kysely<DB>,
  providerPaymentId: string,
): Promise<PaymentRow | undefined> {
  return db
    .selectFrom("payments")
    .selectAll()
    .where("provider_payment_id", "=", providerPaymentId)
    .forUpdate()
    .executeTakeFirst();
}

export async function updatePayment(
  db: Kysely<DB>,
  id: string,
  patch: Updateable<PaymentsTable>,
): Promise<PaymentRow> {
  return db
    .updateTable("payments")
    .set({ ...patch, updated_at: sql<Date>`now()` })
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function insertTransition(
  db: Kysely<DB>,
  transition: {
    id: string;
    payment_id: string;
    from_status: PaymentStatusName;
    to_status: PaymentStatusName;
    actor: string;
    reason: string;
  },
): Promise<void> {
  await db.insertInto("payment_transitions").values(transition).execute();
}

export async function listTransitions(db: Kysely<DB>, paymentId: string): Promise<TransitionRow[]> {
  return db
    .selectFrom("payment_transitions")
    .selectAll()
    .where("payment_id", "=", paymentId)
    .orderBy("id")
    .execute();
}

export interface PaymentFilter {
  userId?: string;
  status?: PaymentStatusName;
  currency?: string;
  orderId?: string;
  createdFrom?: Date;
  createdBefore?: Date;
}

/** Newest first (UUIDv7 ids are time-ordered); `afterId` is the last id of the previous page. */
export async function listPayments(
  db: Kysely<DB>,
  filter: PaymentFilter,
  page: { afterId?: string; limit: number },
): Promise<PaymentRow[]> {
  let query = db.selectFrom("payments").selectAll().where("deleted_at", "is", null);
  if (filter.userId !== undefined) query = query.where("user_id", "=", filter.userId);
  if (filter.status !== undefined) query = query.where("status", "=", filter.status);
  if (filter.currency !== undefined) query = query.where("currency", "=", filter.currency);
  if (filter.orderId !== undefined) query = query.where("order_id", "=", filter.orderId);
  if (filter.createdFrom !== undefined) query = query.where("created_at", ">=", filter.createdFrom);
  if (filter.createdBefore !== undefined) query = query.where("created_at", "<", filter.createdBefore);
  if (page.afterId !== undefined) query = query.where("id", "<", page.afterId);
  return query.orderBy("id", "desc").limit(page.limit).execute();
}

/** Every payment of a user, deleted ones included (GDPR export and erasure). */
export async function listPaymentsOfUser(db: Kysely<DB>, userId: string): Promise<PaymentRow[]> {
  return db.selectFrom("payments").selectAll().where("user_id", "=", userId).orderBy("id").execute();
}
