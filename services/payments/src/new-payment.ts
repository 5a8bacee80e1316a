import { randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import type { PaymentRow } from "./db/schema.js";
import type { NewPaymentInput } from "./payment-input.js";

/**
 * The row of a new payment, whole: id, reference and timestamps are assigned here rather than by
 * the database, so CreatePayment knows its response (and its event) before it writes anything, and
 * writes all of it in one statement (payment-store.ts `insertPayment`).
 */
export function newPaymentRow(ownerId: string, input: NewPaymentInput, at: Date): PaymentRow {
  return {
    id: uuidv7(),
    reference: newReference(),
    user_id: ownerId,
    order_id: input.orderId,
    amount: input.amount.toString(),
    currency: input.currency,
    method: input.method,
    description: input.description,
    metadata: input.metadata,
    status: "pending",
    amount_refunded: "0",
    card_brand: null,
    card_last4: null,
    provider_payment_id: null,
    failure_code: null,
    failure_message: null,
    receipt_email: input.receiptEmail,
    created_at: at,
    updated_at: at,
    deleted_at: null,
    erased_at: null,
  };
}

function newReference(): string {
  // 20 characters of base32 (100 bits): unguessable, and short enough to read out on the phone.
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
  const bytes = randomBytes(20);
  let reference = "pay_";
  for (const byte of bytes) reference += alphabet[byte & 31];
  return reference;
}
