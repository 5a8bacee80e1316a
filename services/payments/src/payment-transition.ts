import type { Transaction, Updateable } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB, PaymentRow, PaymentStatusName, PaymentsTable } from "./db/schema.js";
import { assertTransition } from "./payment.js";
import { appendStatusEvent } from "./payment-events.js";
import { insertTransition, updatePayment } from "./payment-store.js";

/**
 * Moves a payment (locked by the caller: `findPayment(..., { forUpdate: true })`) to `to` in the
 * caller's transaction: the new status, the recorded transition (time, actor, reason) and the
 * status's event commit together. An illegal move throws FAILED_PRECONDITION before writing.
 */
export async function transitionPayment(
  trx: Transaction<DB>,
  row: PaymentRow,
  to: PaymentStatusName,
  opts: { actor: string; reason: string; patch?: Updateable<PaymentsTable> },
): Promise<PaymentRow> {
  assertTransition(row.status, to);
  const updated = await updatePayment(trx, row.id, { ...opts.patch, status: to });
  await insertTransition(trx, {
    id: uuidv7(),
    payment_id: row.id,
    from_status: row.status,
    to_status: to,
    actor: opts.actor,
    reason: opts.reason,
  });
  await appendStatusEvent(trx, updated, opts.reason);
  return updated;
}
