import { DomainError } from "@zero/kit/errors";
import { PaymentMethod, PaymentStatus, RefundStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import type { PaymentMethodName, PaymentStatusName, RefundStatusName } from "./db/schema.js";

// The payment domain: its states, the one table of legal transitions, and the rules over amounts.
// Pure: no I/O, so every rule is unit-tested without a database.

/** Every legal move. Anything not listed answers FAILED_PRECONDITION. */
export const TRANSITIONS: Readonly<Record<PaymentStatusName, readonly PaymentStatusName[]>> = {
  pending: ["processing", "cancelled"],
  processing: ["completed", "failed"],
  completed: ["partially_refunded", "refunded"],
  partially_refunded: ["refunded"],
  failed: [],
  cancelled: [],
  refunded: [],
};

/** Statuses that mean money reached the provider: such a payment belongs to the ledger for good. */
const PROCESSED: ReadonlySet<PaymentStatusName> = new Set([
  "processing",
  "completed",
  "failed",
  "partially_refunded",
  "refunded",
]);

/** Refund statuses move money, so they are reached through refunds only, never set by hand. */
const REFUND_STATUSES: ReadonlySet<PaymentStatusName> = new Set(["partially_refunded", "refunded"]);

export function canTransition(from: PaymentStatusName, to: PaymentStatusName): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws FAILED_PRECONDITION naming the legal moves when `from → to` is not one of them. */
export function assertTransition(from: PaymentStatusName, to: PaymentStatusName): void {
  if (canTransition(from, to)) return;
  const legal = TRANSITIONS[from];
  throw new DomainError(
    "failed_precondition",
    `a ${from} payment cannot become ${to}: ${
      legal.length === 0 ? `${from} is final` : `from ${from} it can only become ${legal.join(" or ")}`
    }`,
    { reason: "ILLEGAL_TRANSITION" },
  );
}

/**
 * The admin override: a legal transition that does not move money. Refund statuses are reached
 * through CreateRefund, so the refunded amount and the status never disagree.
 */
export function assertOverridable(from: PaymentStatusName, to: PaymentStatusName): void {
  if (REFUND_STATUSES.has(to)) {
    throw new DomainError(
      "failed_precondition",
      `${to} is reached by refunding the payment (CreateRefund), not by setting its status`,
      { reason: "ILLEGAL_TRANSITION" },
    );
  }
  assertTransition(from, to);
}

/** Only a payment that never reached the provider may be deleted (soft) — see DeletePayment. */
export function assertDeletable(status: PaymentStatusName): void {
  if (!PROCESSED.has(status)) return;
  throw new DomainError(
    "failed_precondition",
    `a ${status} payment reached the provider and is part of the ledger: it cannot be deleted${
      status === "completed" || status === "partially_refunded" ? " (refund it instead)" : ""
    }`,
    { reason: "PAYMENT_IN_LEDGER" },
  );
}

/** What is left to refund; `requested` 0n means "all of it". Throws when the request cannot be met. */
export function refundAmount(opts: {
  status: PaymentStatusName;
  amount: bigint;
  /** Succeeded refunds plus those still pending: money already promised back. */
  committed: bigint;
  requested: bigint;
}): bigint {
  if (opts.status !== "completed" && opts.status !== "partially_refunded") {
    throw new DomainError(
      "failed_precondition",
      `only a completed or partially refunded payment can be refunded; this one is ${opts.status}`,
      { reason: "NOT_REFUNDABLE" },
    );
  }
  const remaining = opts.amount - opts.committed;
  if (remaining <= 0n) {
    throw new DomainError("failed_precondition", "the payment has been refunded in full already", {
      reason: "NOT_REFUNDABLE",
    });
  }
  if (opts.requested === 0n) return remaining;
  if (opts.requested > remaining) {
    throw new DomainError(
      "failed_precondition",
      `amount ${opts.requested} exceeds the ${remaining} still refundable (captured ${opts.amount}, refunded or pending ${opts.committed})`,
      {
        reason: "REFUND_EXCEEDS_CAPTURED",
        fieldViolations: [{ field: "amount", description: "exceeds what is refundable" }],
      },
    );
  }
  return opts.requested;
}

/** The status after a refund brought the refunded total to `refunded`. */
export function statusAfterRefund(amount: bigint, refunded: bigint): PaymentStatusName {
  return refunded >= amount ? "refunded" : "partially_refunded";
}

// Proto enums ↔ the names stored in Postgres (readable in SQL, stable if enum numbers ever moved).

const STATUS_TO_PROTO: Record<PaymentStatusName, PaymentStatus> = {
  pending: PaymentStatus.PENDING,
  processing: PaymentStatus.PROCESSING,
  completed: PaymentStatus.COMPLETED,
  failed: PaymentStatus.FAILED,
  cancelled: PaymentStatus.CANCELLED,
  partially_refunded: PaymentStatus.PARTIALLY_REFUNDED,
  refunded: PaymentStatus.REFUNDED,
};

const METHOD_TO_PROTO: Record<PaymentMethodName, PaymentMethod> = {
  card: PaymentMethod.CARD,
  debit_card: PaymentMethod.DEBIT_CARD,
  paypal: PaymentMethod.PAYPAL,
  bank_transfer: PaymentMethod.BANK_TRANSFER,
};

const REFUND_STATUS_TO_PROTO: Record<RefundStatusName, RefundStatus> = {
  pending: RefundStatus.PENDING,
  succeeded: RefundStatus.SUCCEEDED,
  failed: RefundStatus.FAILED,
};

export const statusToProto = (status: PaymentStatusName): PaymentStatus => STATUS_TO_PROTO[status];
export const methodToProto = (method: PaymentMethodName): PaymentMethod => METHOD_TO_PROTO[method];
export const refundStatusToProto = (status: RefundStatusName): RefundStatus => REFUND_STATUS_TO_PROTO[status];

export function statusFromProto(status: PaymentStatus): PaymentStatusName | undefined {
  return (Object.keys(STATUS_TO_PROTO) as PaymentStatusName[]).find((k) => STATUS_TO_PROTO[k] === status);
}

export function methodFromProto(method: PaymentMethod): PaymentMethodName | undefined {
  return (Object.keys(METHOD_TO_PROTO) as PaymentMethodName[]).find((k) => METHOD_TO_PROTO[k] === method);
}

/** Card-based methods need a card at processing time; the others must not carry one. */
export function methodTakesCard(method: PaymentMethodName): boolean {
  return method === "card" || method === "debit_card";
}
