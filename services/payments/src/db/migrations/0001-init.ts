import { sql, type Kysely } from "kysely";

// Frozen in time: this migration describes the schema as it was when it shipped. Later changes
// get their own migration; never edit this one after it has run anywhere.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("payments")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("reference", "text", (c) => c.notNull())
    .addColumn("user_id", "uuid", (c) => c.notNull())
    .addColumn("order_id", "uuid")
    .addColumn("amount", "int8", (c) => c.notNull())
    .addColumn("currency", "text", (c) => c.notNull())
    .addColumn("method", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("metadata", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("amount_refunded", "int8", (c) => c.notNull().defaultTo(0))
    // Only what may be kept of a card: never the number, expiry or CVC.
    .addColumn("card_brand", "text")
    .addColumn("card_last4", "text")
    .addColumn("provider_payment_id", "text")
    .addColumn("failure_code", "text")
    .addColumn("failure_message", "text")
    .addColumn("receipt_email", "text")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    // Soft delete (DeletePayment): the row stays, the ledger keeps every payment.
    .addColumn("deleted_at", "timestamptz")
    // Set when the owner's account was deleted and the personal fields were blanked.
    .addColumn("erased_at", "timestamptz")
    .addCheckConstraint("payments_amount_positive", sql`amount > 0`)
    .addCheckConstraint(
      "payments_refunded_within_amount",
      sql`amount_refunded >= 0 and amount_refunded <= amount`,
    )
    .addCheckConstraint("payments_currency_code", sql`currency ~ '^[A-Z]{3}$'`)
    .addCheckConstraint("payments_card_last4", sql`card_last4 is null or card_last4 ~ '^[0-9]{4}$'`)
    .addCheckConstraint(
      "payments_status",
      sql`status in ('pending', 'processing', 'completed', 'failed', 'cancelled', 'partially_refunded', 'refunded')`,
    )
    .addCheckConstraint("payments_method", sql`method in ('card', 'debit_card', 'paypal', 'bank_transfer')`)
    .execute();
  await db.schema.createIndex("payments_reference_key").on("payments").column("reference").unique().execute();
  await db.schema
    .createIndex("payments_provider_payment_id_key")
    .on("payments")
    .column("provider_payment_id")
    .unique()
    .where(sql.ref("provider_payment_id"), "is not", null)
    .execute();
  // Lists are newest first by id (UUIDv7 is time-ordered), per owner or for everyone (admins).
  await sql`create index payments_user_id_idx on payments (user_id, id desc)`.execute(db);
  await sql`create index payments_created_at_idx on payments (created_at)`.execute(db);
  await sql`create index payments_order_id_idx on payments (order_id) where order_id is not null`.execute(db);

  await db.schema
    .createTable("payment_transitions")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("payment_id", "uuid", (c) => c.notNull().references("payments.id"))
    .addColumn("from_status", "text", (c) => c.notNull())
    .addColumn("to_status", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`create index payment_transitions_payment_idx on payment_transitions (payment_id, id)`.execute(db);

  await db.schema
    .createTable("refunds")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("payment_id", "uuid", (c) => c.notNull().references("payments.id"))
    .addColumn("amount", "int8", (c) => c.notNull())
    .addColumn("currency", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("failure_code", "text")
    .addColumn("provider_refund_id", "text")
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("refunds_amount_positive", sql`amount > 0`)
    .addCheckConstraint("refunds_status", sql`status in ('pending', 'succeeded', 'failed')`)
    .execute();
  await sql`create index refunds_payment_idx on refunds (payment_id, id)`.execute(db);

  // Stored results of mutating calls, replayed to retries carrying the same key (24 h).
  await db.schema
    .createTable("idempotency_keys")
    // Whose key: the caller's subject (keys are unique per caller, as with Stripe).
    .addColumn("scope", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("method", "text", (c) => c.notNull())
    // SHA-256 of the request's canonical form (card number reduced to its last four digits).
    .addColumn("fingerprint", "bytea", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    // Which execution holds the key, and until when; a crashed holder's lease runs out.
    .addColumn("lock_token", "uuid")
    .addColumn("locked_until", "timestamptz")
    // `ok` or a domain error code.
    .addColumn("result_code", "text")
    // The response message (binary protobuf) for `ok`; the error as JSON otherwise.
    .addColumn("response", "bytea")
    .addColumn("error", "jsonb")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("completed_at", "timestamptz")
    .addPrimaryKeyConstraint("idempotency_keys_pk", ["scope", "key"])
    .addCheckConstraint("idempotency_keys_state", sql`state in ('in_progress', 'completed')`)
    .execute();
  await db.schema
    .createIndex("idempotency_keys_created_at_idx")
    .on("idempotency_keys")
    .column("created_at")
    .execute();

  // The provider's webhook events: stored when received (answered at once), applied afterwards.
  // The primary key is the provider's event id, so a replayed event is recognised and ignored.
  await db.schema
    .createTable("provider_events")
    .addColumn("event_id", "text", (c) => c.primaryKey())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("payload", "jsonb", (c) => c.notNull())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("processed_at", "timestamptz")
    .addColumn("outcome", "text")
    .addColumn("attempts", "int4", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("last_error", "text")
    .execute();
  await sql`create index provider_events_pending_idx on provider_events (next_attempt_at) where processed_at is null`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("provider_events").execute();
  await db.schema.dropTable("idempotency_keys").execute();
  await db.schema.dropTable("refunds").execute();
  await db.schema.dropTable("payment_transitions").execute();
  await db.schema.dropTable("payments").execute();
}
