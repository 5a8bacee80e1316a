import { sql, type Kysely } from "kysely";

// Frozen in time: this migration describes the schema as it was when it shipped. Later changes
// get their own migration; never edit this one after it has run anywhere.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("recipients")
    .addColumn("user_id", "uuid", (c) => c.primaryKey())
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("first_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("last_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex("recipients_email_idx").on("recipients").column("email").execute();

  // Users whose account was deleted: an event about them handled late (retries reorder events)
  // must not bring their address back or mail them.
  await db.schema
    .createTable("erased_users")
    .addColumn("user_id", "uuid", (c) => c.primaryKey())
    .addColumn("erased_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable("templates")
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("locale", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("active_version", "integer", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("templates_pk", ["name", "locale"])
    .execute();

  await db.schema
    .createTable("template_versions")
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("locale", "text", (c) => c.notNull())
    .addColumn("version", "integer", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("html_body", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("text_body", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("template_versions_pk", ["name", "locale", "version"])
    .addForeignKeyConstraint("template_versions_template_fk", ["name", "locale"], "templates", [
      "name",
      "locale",
    ])
    .execute();

  await db.schema
    .createTable("deliveries")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("idempotency_key", "text", (c) => c.notNull())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("user_id", "uuid")
    .addColumn("recipient", "text", (c) => c.notNull())
    .addColumn("template", "text")
    .addColumn("locale", "text", (c) => c.notNull())
    .addColumn("template_version", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("html_body", "text")
    .addColumn("text_body", "text")
    .addColumn("variables", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("contains_secret", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("priority", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .addColumn("next_attempt_at", "timestamptz", (c) => c.notNull())
    .addColumn("message_id", "text", (c) => c.notNull())
    .addColumn("trace_headers", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("sent_at", "timestamptz")
    .addCheckConstraint("deliveries_status", sql`status in ('queued', 'deferred', 'sent', 'failed')`)
    .addCheckConstraint("deliveries_priority", sql`priority in ('normal', 'transactional')`)
    .execute();
  // The idempotency decision: a redelivered event or a retried call meets this index.
  await db.schema
    .createIndex("deliveries_idempotency_key")
    .on("deliveries")
    .column("idempotency_key")
    .unique()
    .execute();
  // The worker's queue: only pending rows, so it stays small however much history is kept.
  await sql`create index deliveries_due on deliveries (next_attempt_at, id) where status in ('queued', 'deferred')`.execute(
    db,
  );
  // GetStats ranges; listings page by id (UUIDv7, creation order) on the primary key.
  await db.schema.createIndex("deliveries_created_at_idx").on("deliveries").column("created_at").execute();
  await db.schema.createIndex("deliveries_user_id_idx").on("deliveries").column("user_id").execute();
  await db.schema.createIndex("deliveries_recipient_idx").on("deliveries").column("recipient").execute();

  await db.schema
    .createTable("dead_letters")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    // `<consumer>:<event id>` (the dead letter's Nats-Msg-Id): one row per consumer and event.
    .addColumn("dlq_key", "text", (c) => c.notNull().unique())
    .addColumn("consumer", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("event_id", "uuid")
    .addColumn("error", "text", (c) => c.notNull())
    .addColumn("deliveries", "integer", (c) => c.notNull())
    .addColumn("payload", "bytea", (c) => c.notNull())
    .addColumn("headers", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("dead_lettered_at", "timestamptz", (c) => c.notNull())
    .addColumn("replays", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_replay_error", "text")
    .addColumn("resolved_at", "timestamptz")
    .execute();
  await sql`create index dead_letters_listing on dead_letters (dead_lettered_at desc, id desc)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("dead_letters").execute();
  await db.schema.dropTable("deliveries").execute();
  await db.schema.dropTable("template_versions").execute();
  await db.schema.dropTable("templates").execute();
  await db.schema.dropTable("erased_users").execute();
  await db.schema.dropTable("recipients").execute();
}
