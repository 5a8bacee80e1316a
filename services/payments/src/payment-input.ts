import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { DomainError, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import { MAX_PAGE_SIZE, pageSizeOf } from "@zero/kit/page-token";
import type { CreatePaymentRequest, ListPaymentsRequest } from "@zero/proto/zero/payments/v1/payments_pb";
import { PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { maxAmount, minorUnitExponent, normaliseCurrency } from "./currency.js";
import type { PaymentMethodName, PaymentStatusName } from "./db/schema.js";
import { methodFromProto, statusFromProto } from "./payment.js";
import type { PaymentFilter } from "./payment-store.js";

// Request validation: every problem of a request reported at once, as field violations that name
// the field and say what is allowed. Values are never echoed (they may be card data or personal).

export const DESCRIPTION_MAX = 500;
export const REASON_MAX = 500;
export const METADATA_MAX_KEYS = 20;
export const METADATA_KEY_MAX = 40;
export const METADATA_VALUE_MAX = 500;
const METADATA_KEY = /^[A-Za-z0-9_.-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// No spaces or control characters (a NUL could not even be stored).
const EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]+$/u;

export interface NewPaymentInput {
  amount: bigint;
  currency: string;
  method: PaymentMethodName;
  description: string;
  metadata: Record<string, string>;
  orderId: string | null;
  receiptEmail: string | null;
}

function fail(violations: FieldViolation[]): void {
  if (violations.length > 0) throw invalidArguments(violations);
}

export function parseCreatePayment(
  req: CreatePaymentRequest,
  tokenEmail: string | undefined,
): NewPaymentInput {
  const violations: FieldViolation[] = [];
  const currency = normaliseCurrency(req.currency);
  if (req.currency.trim() === "")
    violations.push({ field: "currency", description: "is required (ISO 4217, e.g. EUR)" });
  else if (currency === undefined)
    violations.push({
      field: "currency",
      description: "is not an ISO 4217 currency in circulation (e.g. EUR, USD, JPY)",
    });
  if (req.amount <= 0n) {
    violations.push({
      field: "amount",
      description: "must be a positive integer number of minor units (1999 = 19.99 EUR)",
    });
  } else if (currency !== undefined && req.amount > maxAmount(currency)) {
    violations.push({
      field: "amount",
      description: `must be at most ${maxAmount(currency)} minor units of ${currency} (1,000,000 ${currency}; the minor unit has ${minorUnitExponent(currency)} decimals)`,
    });
  }
  const method = methodFromProto(req.method);
  if (method === undefined) {
    violations.push({
      field: "method",
      description: "must be one of card, debit_card, paypal, bank_transfer",
    });
  }
  const description = req.description.trim();
  if ([...description].length > DESCRIPTION_MAX) {
    violations.push({ field: "description", description: `must be at most ${DESCRIPTION_MAX} characters` });
  }
  violations.push(...metadataViolations(req.metadata));
  const orderId = req.orderId.trim();
  if (orderId !== "" && !UUID.test(orderId))
    violations.push({ field: "order_id", description: "must be a UUID" });
  const requestedEmail = req.receiptEmail.trim();
  if (requestedEmail !== "" && (requestedEmail.length > 254 || !EMAIL.test(requestedEmail))) {
    violations.push({
      field: "receipt_email",
      description: "must be an email address of at most 254 characters",
    });
  }
  fail(violations);
  const fallback =
    tokenEmail !== undefined && EMAIL.test(tokenEmail) && tokenEmail.length <= 254 ? tokenEmail : null;
  return {
    amount: req.amount,
    currency: currency!,
    method: method!,
    description,
    metadata: { ...req.metadata },
    orderId: orderId === "" ? null : orderId.toLowerCase(),
    receiptEmail: requestedEmail === "" ? fallback : requestedEmail.toLowerCase(),
  };
}

function metadataViolations(metadata: Record<string, string>): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const keys = Object.keys(metadata);
  if (keys.length > METADATA_MAX_KEYS) {
    violations.push({ field: "metadata", description: `must have at most ${METADATA_MAX_KEYS} keys` });
  }
  for (const key of keys.slice(0, METADATA_MAX_KEYS + 1)) {
    if (key.length === 0 || key.length > METADATA_KEY_MAX || !METADATA_KEY.test(key)) {
      violations.push({
        field: "metadata",
        description: `keys must be 1 to ${METADATA_KEY_MAX} characters of letters, digits, _ - .`,
      });
      break;
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    if ([...value].length > METADATA_VALUE_MAX) {
      violations.push({
        field: `metadata.${METADATA_KEY.test(key) && key.length <= METADATA_KEY_MAX ? key : "<key>"}`,
        description: `values must be at most ${METADATA_VALUE_MAX} characters`,
      });
    }
  }
  return violations;
}

/** A payment id or reference from a request; INVALID_ARGUMENT when empty. */
export function requirePaymentId(value: string): string {
  const id = value.trim();
  if (id === "") throw invalidArguments([{ field: "payment_id", description: "is required" }]);
  if (id.length > 64)
    throw invalidArguments([{ field: "payment_id", description: "is not a payment id or reference" }]);
  return id;
}

export function parseReason(value: string, opts: { required?: boolean } = {}): string {
  const reason = value.trim();
  if (opts.required && reason === "")
    throw invalidArguments([{ field: "reason", description: "is required" }]);
  if ([...reason].length > REASON_MAX) {
    throw invalidArguments([{ field: "reason", description: `must be at most ${REASON_MAX} characters` }]);
  }
  return reason;
}

export function parseStatus(status: PaymentStatus): PaymentStatusName {
  const name = status === PaymentStatus.UNSPECIFIED ? undefined : statusFromProto(status);
  if (name === undefined) {
    throw invalidArguments([
      {
        field: "status",
        description:
          "is required: one of PAYMENT_STATUS_PENDING, _PROCESSING, _COMPLETED, _FAILED, _CANCELLED, _PARTIALLY_REFUNDED, _REFUNDED",
      },
    ]);
  }
  return name;
}

export interface ListQuery {
  filter: PaymentFilter;
  pageSize: number;
  pageToken: string;
}

/** The list request as filters; `callerId`'s own payments unless `isAdmin`. */
export function parseListPayments(
  req: ListPaymentsRequest,
  caller: { subject: string; isAdmin: boolean },
): ListQuery {
  const violations: FieldViolation[] = [];
  if (req.pageSize < 0) violations.push({ field: "page_size", description: `must be 0 to ${MAX_PAGE_SIZE}` });
  const filter: PaymentFilter = {};
  const userId = req.userId.trim();
  if (userId !== "" && !UUID.test(userId))
    violations.push({ field: "user_id", description: "must be a UUID" });
  if (req.status !== PaymentStatus.UNSPECIFIED) {
    const status = statusFromProto(req.status);
    if (status === undefined) violations.push({ field: "status", description: "is not a payment status" });
    else filter.status = status;
  }
  if (req.currency.trim() !== "") {
    const currency = normaliseCurrency(req.currency);
    if (currency === undefined)
      violations.push({ field: "currency", description: "is not an ISO 4217 currency in circulation" });
    else filter.currency = currency;
  }
  const orderId = req.orderId.trim();
  if (orderId !== "") {
    if (!UUID.test(orderId)) violations.push({ field: "order_id", description: "must be a UUID" });
    else filter.orderId = orderId.toLowerCase();
  }
  const start = timeOf(req.startTime);
  const end = timeOf(req.endTime);
  if (start !== undefined) filter.createdFrom = start;
  if (end !== undefined) filter.createdBefore = end;
  if (start !== undefined && end !== undefined && end <= start) {
    violations.push({ field: "end_time", description: "must be after start_time" });
  }
  fail(violations);
  if (caller.isAdmin) {
    if (userId !== "") filter.userId = userId.toLowerCase();
  } else {
    if (userId !== "" && userId.toLowerCase() !== caller.subject.toLowerCase()) {
      throw new DomainError("permission_denied", "you may list only your own payments: leave user_id empty", {
        reason: "NOT_YOUR_PAYMENTS",
      });
    }
    filter.userId = caller.subject;
  }
  // Negative sizes were reported above with the other problems.
  return { filter, pageSize: pageSizeOf(req.pageSize), pageToken: req.pageToken };
}

function timeOf(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}
