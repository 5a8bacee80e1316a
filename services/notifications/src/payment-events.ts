import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { EventContext, EventHandler } from "@zero/kit/events/consumer";
import {
  PaymentCreatedSchema,
  PaymentFailedSchema,
  PaymentRefundedSchema,
  PaymentSucceededSchema,
} from "@zero/proto/zero/payments/v1/events_pb";
import type { DB } from "./db/schema.js";
import { emailProblem, isUuid, normaliseEmail } from "./delivery.js";
import type { MailQueue } from "./mail-queue.js";
import { findRecipient, isErased } from "./recipient-store.js";
import { DEFAULT_LOCALE } from "./template.js";

// The consumer of the payments service's events (durable `notifications-payment-events` on
// ZERO_PAYMENTS): each one becomes one mail, once per event and template.
//
// The recipient is the event's `receipt_email` when it holds an address (payments fills it from
// the request or the owner's token); otherwise the owner's address from the address book that
// auth's UserRegistered events fill (recipient-store.ts) — no synchronous call to another
// service. An event with neither fails, is retried with backoff (the UserRegistered event may
// simply not have been handled yet) and is finally dead-lettered for an admin to replay.

export const PAYMENT_EVENTS_DURABLE = "notifications-payment-events";

interface PaymentMail {
  template: string;
  userId: string;
  receiptEmail: string;
  variables: Record<string, string>;
}

export function createPaymentEventHandlers(deps: { queue: MailQueue }): EventHandler<DB>[] {
  function handler<Desc extends DescMessage>(
    schema: Desc,
    toMail: (event: MessageShape<Desc>) => PaymentMail,
  ): EventHandler<DB> {
    const typed: EventHandler<DB, Desc> = {
      schema,
      async handle(event, ctx) {
        await queueMail(toMail(event), ctx);
      },
    };
    return typed;
  }

  async function queueMail(mail: PaymentMail, ctx: EventContext<DB>): Promise<void> {
    if (isUuid(mail.userId) && (await isErased(ctx.trx, mail.userId))) return; // account deleted: no mail
    const known = isUuid(mail.userId) ? await findRecipient(ctx.trx, mail.userId) : undefined;
    const receipt = normaliseEmail(mail.receiptEmail);
    const to = receipt !== "" && emailProblem(receipt) === undefined ? receipt : known?.email;
    if (to === undefined) {
      throw new Error(
        `${ctx.subject} ${ctx.eventId}: no recipient (no valid receipt_email and user ${mail.userId || "(none)"} is not in the address book yet)`,
      );
    }
    await deps.queue.enqueue(ctx.trx, {
      idempotencyKey: `event:${ctx.eventId}:${mail.template}`,
      fingerprint: ctx.eventId,
      source: `event:${ctx.subject}`,
      to,
      userId: isUuid(mail.userId) ? mail.userId : undefined,
      locale: DEFAULT_LOCALE,
      template: { name: mail.template },
      variables: { first_name: known?.first_name ?? "", ...mail.variables },
      priority: "normal",
    });
  }

  return [
    handler(PaymentCreatedSchema, (e) => ({
      template: "payment-created",
      userId: e.userId,
      receiptEmail: e.receiptEmail,
      variables: {
        ...paymentVariables(e),
        description: e.description,
        date: formatTime(e.createTime),
      },
    })),
    handler(PaymentSucceededSchema, (e) => ({
      template: "payment-succeeded",
      userId: e.userId,
      receiptEmail: e.receiptEmail,
      variables: { ...paymentVariables(e), date: formatTime(e.succeedTime) },
    })),
    handler(PaymentFailedSchema, (e) => ({
      template: "payment-failed",
      userId: e.userId,
      receiptEmail: e.receiptEmail,
      variables: {
        ...paymentVariables(e),
        error_message: e.failureMessage,
        failure_code: e.failureCode,
        date: formatTime(e.failTime),
      },
    })),
    handler(PaymentRefundedSchema, (e) => ({
      template: "payment-refunded",
      userId: e.userId,
      receiptEmail: e.receiptEmail,
      variables: {
        ...paymentVariables(e),
        refund_id: e.refundId,
        refund_amount: formatMoney(e.refundAmount, e.currency),
        amount_refunded: formatMoney(e.amountRefunded, e.currency),
        // Handlebars' {{#if}} treats any non-empty string as true: "" is the only false.
        fully_refunded: e.fullyRefunded ? "yes" : "",
        date: formatTime(e.refundTime),
      },
    })),
  ];
}

function paymentVariables(e: {
  paymentId: string;
  reference: string;
  orderId: string;
  amount: bigint;
  currency: string;
}): Record<string, string> {
  return {
    payment_id: e.paymentId,
    // The seeds' templates call it transactionId.
    transaction_id: e.paymentId,
    reference: e.reference || e.paymentId,
    order_id: e.orderId,
    amount: formatMoney(e.amount, e.currency),
    amount_minor: e.amount.toString(),
    currency: e.currency,
  };
}

/** `1234n, "EUR"` → `€12.34`: exact (decimal string, no float), the currency's own minor digits. */
export function formatMoney(amountMinor: bigint, currency: string, locale = DEFAULT_LOCALE): string {
  let format: Intl.NumberFormat;
  try {
    format = new Intl.NumberFormat(locale, { style: "currency", currency });
  } catch {
    return `${amountMinor.toString()} ${currency} (minor units)`;
  }
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  const negative = amountMinor < 0n;
  const abs = (negative ? -amountMinor : amountMinor).toString().padStart(digits + 1, "0");
  const decimal = digits === 0 ? abs : `${abs.slice(0, -digits)}.${abs.slice(-digits)}`;
  // Intl formats a decimal string exactly (Intl.NumberFormat v3); the type only lists numbers.
  return format.format(`${negative ? "-" : ""}${decimal}` as unknown as number);
}

function formatTime(ts: Timestamp | undefined): string {
  const date = ts === undefined ? new Date() : timestampDate(ts);
  return new Intl.DateTimeFormat(DEFAULT_LOCALE, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: "UTC",
    timeZoneName: "short",
  }).format(date);
}
