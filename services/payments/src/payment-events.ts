import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { appendEvent, outboxEntry, type OutboxEntry } from "@zero/kit/events/outbox";
import {
  PaymentCancelledSchema,
  PaymentCreatedSchema,
  PaymentFailedSchema,
  PaymentRefundedSchema,
  PaymentSucceededSchema,
} from "@zero/proto/zero/payments/v1/events_pb";
import type { Transaction } from "kysely";
import type { DB, PaymentRow, RefundRow } from "./db/schema.js";
import { methodToProto } from "./payment.js";

// The events a payment's life produces, appended to the outbox in the transaction that changes
// the payment. Built from rows, and never from a request: no card data can slip in.

export const EVENT_SOURCE = "zero.payments";
export const EVENT_STREAM = { name: "ZERO_PAYMENTS", subjects: ["zero.payments.v1.>"] };

const common = (row: PaymentRow) => ({
  paymentId: row.id,
  reference: row.reference,
  userId: row.user_id,
  orderId: row.order_id ?? "",
  currency: row.currency,
});

/** The PaymentCreated of a new payment, for the statement that inserts it (see insertPayment). */
export function paymentCreatedEntry(row: PaymentRow): OutboxEntry {
  return outboxEntry(
    PaymentCreatedSchema,
    create(PaymentCreatedSchema, {
      ...common(row),
      amount: BigInt(row.amount),
      method: methodToProto(row.method),
      description: row.description,
      receiptEmail: row.receipt_email ?? "",
      createTime: timestampFromDate(row.created_at),
    }),
    { source: EVENT_SOURCE },
  );
}

/** The event of a status change, if it has one (refunds append theirs with the refund). */
export async function appendStatusEvent(
  trx: Transaction<DB>,
  row: PaymentRow,
  reason: string,
): Promise<void> {
  const at = timestampFromDate(row.updated_at);
  switch (row.status) {
    case "completed":
      await appendEvent(
        trx,
        PaymentSucceededSchema,
        create(PaymentSucceededSchema, {
          ...common(row),
          amount: BigInt(row.amount),
          method: methodToProto(row.method),
          receiptEmail: row.receipt_email ?? "",
          succeedTime: at,
        }),
        { source: EVENT_SOURCE },
      );
      return;
    case "failed":
      await appendEvent(
        trx,
        PaymentFailedSchema,
        create(PaymentFailedSchema, {
          ...common(row),
          amount: BigInt(row.amount),
          method: methodToProto(row.method),
          receiptEmail: row.receipt_email ?? "",
          failureCode: row.failure_code ?? "",
          failureMessage: row.failure_message ?? "",
          failTime: at,
        }),
        { source: EVENT_SOURCE },
      );
      return;
    case "cancelled":
      await appendEvent(
        trx,
        PaymentCancelledSchema,
        create(PaymentCancelledSchema, {
          ...common(row),
          amount: BigInt(row.amount),
          reason,
          cancelTime: at,
        }),
        { source: EVENT_SOURCE },
      );
      return;
    default:
      return;
  }
}

export async function appendPaymentRefunded(
  trx: Transaction<DB>,
  row: PaymentRow,
  refund: RefundRow,
): Promise<void> {
  await appendEvent(
    trx,
    PaymentRefundedSchema,
    create(PaymentRefundedSchema, {
      ...common(row),
      refundId: refund.id,
      refundAmount: BigInt(refund.amount),
      amountRefunded: BigInt(row.amount_refunded),
      amount: BigInt(row.amount),
      fullyRefunded: row.status === "refunded",
      receiptEmail: row.receipt_email ?? "",
      refundTime: timestampFromDate(refund.updated_at),
    }),
    { source: EVENT_SOURCE },
  );
}
