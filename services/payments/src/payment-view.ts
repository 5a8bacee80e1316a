import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CardSummarySchema,
  PaymentSchema,
  RefundSchema,
  StatusTransitionSchema,
  type Payment,
  type Refund,
} from "@zero/proto/zero/payments/v1/payments_pb";
import type { PaymentRow, RefundRow, TransitionRow } from "./db/schema.js";
import { methodToProto, refundStatusToProto, statusToProto } from "./payment.js";

// Rows → the API's messages. The one place a column becomes a field.

export function toPayment(row: PaymentRow, transitions: readonly TransitionRow[] = []): Payment {
  return create(PaymentSchema, {
    id: row.id,
    reference: row.reference,
    userId: row.user_id,
    orderId: row.order_id ?? "",
    amount: BigInt(row.amount),
    currency: row.currency,
    method: methodToProto(row.method),
    description: row.description,
    metadata: row.metadata,
    status: statusToProto(row.status),
    amountRefunded: BigInt(row.amount_refunded),
    ...(row.card_last4 === null
      ? {}
      : { card: create(CardSummarySchema, { brand: row.card_brand ?? "unknown", last4: row.card_last4 }) }),
    failureCode: row.failure_code ?? "",
    failureMessage: row.failure_message ?? "",
    receiptEmail: row.receipt_email ?? "",
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    transitions: transitions.map((t) =>
      create(StatusTransitionSchema, {
        fromStatus: statusToProto(t.from_status),
        toStatus: statusToProto(t.to_status),
        time: timestampFromDate(t.created_at),
        actor: t.actor,
        reason: t.reason,
      }),
    ),
  });
}

export function toRefund(row: RefundRow): Refund {
  return create(RefundSchema, {
    id: row.id,
    paymentId: row.payment_id,
    amount: BigInt(row.amount),
    currency: row.currency,
    reason: row.reason,
    status: refundStatusToProto(row.status),
    failureCode: row.failure_code ?? "",
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
  });
}
