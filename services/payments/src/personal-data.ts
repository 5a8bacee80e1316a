import type { JsonObject } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "@zero/kit/errors";
import type { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { sql, type Kysely } from "kysely";
import type { DB, PaymentRow, RefundRow, TransitionRow } from "./db/schema.js";
import { listPaymentsOfUser } from "./payment-store.js";

// GDPR for the payments ledger.
//
// Export (art. 15/20): every payment of the user with its refunds and history. Card data beyond
// brand and last four digits is never held, so it cannot be exported either.
//
// Erasure (`zero.auth.v1.UserDeleted`): a payment is an accounting record that must be kept for the
// statutory retention period (GDPR art. 17(3)(b): legal obligation), so rows are never deleted.
// What the ledger does not need is blanked: description, metadata, receipt email, card brand and
// last four, the reasons the user wrote on their own transitions, and the stored idempotent
// responses (copies of all that). Kept: ids, reference, owner id (a random UUID that no longer
// maps to anyone once auth has deleted the account; orders reference it), order id, amounts,
// currency, method, statuses and their history, provider ids, timestamps.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const money = (amount: string, currency: string) => ({ amount, currency });

export async function exportPersonalData(db: Kysely<DB>, userId: string): Promise<JsonObject> {
  const payments = await listPaymentsOfUser(db, userId);
  if (payments.length === 0) return {};
  const ids = payments.map((p) => p.id);
  const [transitions, refunds] = await Promise.all([
    db.selectFrom("payment_transitions").selectAll().where("payment_id", "in", ids).orderBy("id").execute(),
    db.selectFrom("refunds").selectAll().where("payment_id", "in", ids).orderBy("id").execute(),
  ]);
  return {
    payments: payments.map((p) =>
      paymentDocument(
        p,
        transitions.filter((t) => t.payment_id === p.id),
        refunds.filter((r) => r.payment_id === p.id),
      ),
    ),
  };
}

function paymentDocument(p: PaymentRow, transitions: TransitionRow[], refunds: RefundRow[]): JsonObject {
  return {
    id: p.id,
    reference: p.reference,
    order_id: p.order_id,
    amount: money(p.amount, p.currency),
    amount_refunded: money(p.amount_refunded, p.currency),
    method: p.method,
    status: p.status,
    description: p.description,
    metadata: p.metadata,
    receipt_email: p.receipt_email,
    card: p.card_last4 === null ? null : { brand: p.card_brand, last4: p.card_last4 },
    failure_code: p.failure_code,
    failure_message: p.failure_message,
    created_at: iso(p.created_at),
    updated_at: iso(p.updated_at),
    deleted_at: iso(p.deleted_at),
    erased_at: iso(p.erased_at),
    history: transitions.map((t) => ({
      from: t.from_status,
      to: t.to_status,
      at: iso(t.created_at),
      actor: t.actor,
      reason: t.reason,
    })),
    refunds: refunds.map((r) => ({
      id: r.id,
      amount: money(r.amount, r.currency),
      status: r.status,
      reason: r.reason,
      created_at: iso(r.created_at),
    })),
  };
}

/** Blanks what the ledger does not need (see above). Idempotent: a second run changes nothing. */
export async function erasePersonalData(db: Kysely<DB>, userId: string): Promise<void> {
  await db
    .updateTable("payments")
    .set({
      description: "",
      metadata: "{}",
      receipt_email: null,
      card_brand: null,
      card_last4: null,
      erased_at: sql<Date>`coalesce(erased_at, now())`,
    })
    .where("user_id", "=", userId)
    .execute();
  await db
    .updateTable("payment_transitions")
    .set({ reason: "" })
    .where("actor", "=", `user:${userId}`)
    .execute();
  await db.deleteFrom("idempotency_keys").where("scope", "=", userId).execute();
}

/** zero.privacy.v1.PersonalDataService (INTERNAL: the users service assembles the export). */
export function createPersonalDataService(deps: { db: Kysely<DB> }): ServiceImpl<typeof PersonalDataService> {
  return {
    async exportPersonalData(req) {
      const userId = req.userId.trim().toLowerCase();
      if (!UUID.test(userId)) throw invalidArgument("user_id", "must be a UUID");
      const data = await exportPersonalData(deps.db, userId);
      return { service: "payments", data };
    },
  };
}
