import type { ColumnType, Insertable, Selectable } from "kysely";

// The payments service's tables as kysely sees them. The kit's outbox/inbox tables live in the same
// database but are reached only through the kit. int8 columns come back as strings (the kit's pool
// setting): money is converted with BigInt, never through a float.

type Defaulted<T> = ColumnType<T, T | undefined, T>;
type Int8 = ColumnType<string, string | bigint, string | bigint>;

export type PaymentStatusName =
  "pending" | "processing" | "completed" | "failed" | "cancelled" | "partially_refunded" | "refunded";

export type PaymentMethodName = "card" | "debit_card" | "paypal" | "bank_transfer";

export type RefundStatusName = "pending" | "succeeded" | "failed";

export interface PaymentsTable {
  id: string;
  reference: string;
  user_id: string;
  order_id: string | null;
  amount: Int8;
  currency: string;
  method: PaymentMethodName;
  description: Defaulted<string>;
  // Written as JSON text, read back parsed.
  metadata: ColumnType<Record<string, string>, string | undefined, string>;
  status: PaymentStatusName;
  amount_refunded: ColumnType<string, string | bigint | undefined, string | bigint>;
  card_brand: string | null;
  card_last4: string | null;
  provider_payment_id: string | null;
  failure_code: string | null;
  failure_message: string | null;
  receipt_email: string | null;
  created_at: Defaulted<Date>;
  updated_at: Defaulted<Date>;
  deleted_at: Date | null;
  erased_at: Date | null;
}

export interface PaymentTransitionsTable {
  id: string;
  payment_id: string;
  from_status: PaymentStatusName;
  to_status: PaymentStatusName;
  actor: string;
  reason: Defaulted<string>;
  created_at: Defaulted<Date>;
}

export interface RefundsTable {
  id: string;
  payment_id: string;
  amount: Int8;
  currency: string;
  reason: Defaulted<string>;
  status: RefundStatusName;
  failure_code: string | null;
  provider_refund_id: string | null;
  actor: string;
  created_at: Defaulted<Date>;
  updated_at: Defaulted<Date>;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  method: string;
  fingerprint: Buffer;
  state: "in_progress" | "completed";
  lock_token: string | null;
  locked_until: Date | null;
  result_code: string | null;
  response: Buffer | null;
  // Written as JSON text, read back parsed.
  error: ColumnType<StoredError | null, string | null, string | null>;
  created_at: Defaulted<Date>;
  completed_at: Date | null;
}

/** A domain error as stored for replay. */
export interface StoredError {
  code: string;
  message: string;
  reason?: string;
  metadata?: Record<string, string>;
  fieldViolations?: { field: string; description: string }[];
}

export interface ProviderEventsTable {
  event_id: string;
  type: string;
  payload: ColumnType<unknown, string, string>;
  received_at: Defaulted<Date>;
  processed_at: Date | null;
  outcome: string | null;
  attempts: Defaulted<number>;
  next_attempt_at: Defaulted<Date>;
  last_error: string | null;
}

export interface DB {
  payments: PaymentsTable;
  payment_transitions: PaymentTransitionsTable;
  refunds: RefundsTable;
  idempotency_keys: IdempotencyKeysTable;
  provider_events: ProviderEventsTable;
}

export type PaymentRow = Selectable<PaymentsTable>;
export type NewPayment = Insertable<PaymentsTable>;
export type TransitionRow = Selectable<PaymentTransitionsTable>;
export type RefundRow = Selectable<RefundsTable>;
export type NewRefund = Insertable<RefundsTable>;
export type IdempotencyKeyRow = Selectable<IdempotencyKeysTable>;
export type ProviderEventRow = Selectable<ProviderEventsTable>;
