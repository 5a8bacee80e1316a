import type { ColumnType, Generated, Insertable, Selectable } from "kysely";
import type { OutboxTables } from "@zero/kit/events/outbox";

// The notifications service's tables as kysely sees them, plus the kit's inbox (a dead-letter
// replay records the event as handled exactly like the consumer does).

type CreatedAt = ColumnType<Date, Date | undefined, never>;
type Json<T> = ColumnType<T, string, string>;

export type DeliveryStatusValue = "queued" | "deferred" | "sent" | "failed";
export type DeliveryPriority = "normal" | "transactional";

/** Who a user id mails to: filled from UserRegistered, emptied on UserDeleted. */
export interface RecipientsTable {
  user_id: string;
  email: string;
  first_name: string;
  last_name: string;
  updated_at: Date;
}

/** Tombstones of deleted accounts (see recipient-store.ts). */
export interface ErasedUsersTable {
  user_id: string;
  erased_at: Generated<Date>;
}

export interface TemplatesTable {
  name: string;
  locale: string;
  description: string;
  active_version: number;
  created_at: CreatedAt;
  updated_at: Date;
}

export interface TemplateVersionsTable {
  name: string;
  locale: string;
  version: number;
  subject: string;
  html_body: string;
  text_body: string;
  // The admin's user id; `system` for the seeded defaults.
  created_by: string;
  created_at: CreatedAt;
}

/**
 * One email and its state machine (delivery.ts). The row is the queue: the worker takes due rows
 * with FOR UPDATE SKIP LOCKED and keeps the row locked while it talks to the SMTP server.
 */
export interface DeliveriesTable {
  id: string;
  // `event:<event id>:<template>`, `service:<caller>:<key>`, `api:<key>`: one message per key.
  idempotency_key: string;
  // SHA-256 of the request's parameters, to refuse a reused key with other parameters.
  fingerprint: string;
  source: string;
  user_id: string | null;
  recipient: string;
  template: string | null;
  locale: string;
  template_version: number;
  subject: string;
  // Null once sent when the message held a secret, and after erasure.
  html_body: string | null;
  text_body: string | null;
  // Secret values replaced by `[redacted]`.
  variables: Json<Record<string, string>>;
  contains_secret: boolean;
  priority: DeliveryPriority;
  status: DeliveryStatusValue;
  attempts: Generated<number>;
  last_error: string | null;
  next_attempt_at: Date;
  message_id: string;
  // `traceparent`/`tracestate` of whoever queued it: the send span continues that trace.
  trace_headers: Json<Record<string, string>>;
  created_at: CreatedAt;
  updated_at: Date;
  sent_at: Date | null;
}

export interface DeadLettersTable {
  id: string;
  // `<consumer>:<event id>`, the dead letter's Nats-Msg-Id: one row per consumer and event.
  dlq_key: string;
  consumer: string;
  subject: string;
  event_id: string | null;
  error: string;
  deliveries: number;
  payload: Buffer;
  headers: Json<Record<string, string>>;
  dead_lettered_at: Date;
  replays: Generated<number>;
  last_replay_error: string | null;
  resolved_at: Date | null;
}

export interface DB extends Pick<OutboxTables, "kit_inbox"> {
  recipients: RecipientsTable;
  erased_users: ErasedUsersTable;
  templates: TemplatesTable;
  template_versions: TemplateVersionsTable;
  deliveries: DeliveriesTable;
  dead_letters: DeadLettersTable;
}

export type DeliveryRow = Selectable<DeliveriesTable>;
export type NewDelivery = Insertable<DeliveriesTable>;
export type TemplateVersionRow = Selectable<TemplateVersionsTable>;
export type TemplateRow = Selectable<TemplatesTable>;
export type RecipientRow = Selectable<RecipientsTable>;
export type DeadLetterRow = Selectable<DeadLettersTable>;
