import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { context, propagation } from "@opentelemetry/api";
import {
  sql,
  type ColumnType,
  type Generated,
  type Insertable,
  type Kysely,
  type Migration,
  type QueryCreator,
  type Transaction,
} from "kysely";
import { uuidv7 } from "uuidv7";

/** The kit's own tables; services never touch them directly. */
export interface OutboxTables {
  kit_outbox: {
    id: string;
    /** NATS subject = the message's full proto name. */
    subject: string;
    payload: Buffer;
    /** `ce-*`, `content-type`, `traceparent`/`tracestate` to publish with; written as JSON text. */
    headers: ColumnType<Record<string, string>, string, string>;
    created_at: Generated<Date>;
    published_at: Date | null;
  };
  kit_inbox: {
    /** The durable consumer name: each consumer applies an event once. */
    consumer: string;
    event_id: string;
    processed_at: Generated<Date>;
  };
}

/**
 * Creates `kit_outbox` and `kit_inbox`. Every service that publishes or consumes events lists it
 * first in its migrations: `{ "0000_kit_outbox": outboxMigration, "0001_...": ... }`.
 */
export const outboxMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable("kit_outbox")
      .addColumn("id", "uuid", (c) => c.primaryKey())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("payload", "bytea", (c) => c.notNull())
      .addColumn("headers", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn("published_at", "timestamptz")
      .execute();
    // The relay reads only unpublished rows; this stays tiny however many published rows are kept.
    await sql`create index kit_outbox_unpublished on kit_outbox (created_at, id) where published_at is null`.execute(
      db,
    );
    // For pruning published rows by age.
    await sql`create index kit_outbox_published on kit_outbox (published_at) where published_at is not null`.execute(
      db,
    );
    await db.schema
      .createTable("kit_inbox")
      .addColumn("consumer", "text", (c) => c.notNull())
      .addColumn("event_id", "uuid", (c) => c.notNull())
      .addColumn("processed_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint("kit_inbox_pk", ["consumer", "event_id"])
      .execute();
  },
  async down(db: Kysely<unknown>) {
    await db.schema.dropTable("kit_inbox").execute();
    await db.schema.dropTable("kit_outbox").execute();
  },
};

export interface AppendEventOptions {
  /** CloudEvents `source`: who produced it, e.g. `zero.auth`. */
  source: string;
  /** The event id (UUID); a new UUIDv7 when omitted. */
  id?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An outbox row ready to insert: what `appendEvent` writes. */
export type OutboxEntry = Insertable<OutboxTables["kit_outbox"]> & { id: string };

/**
 * The outbox row of an event, without writing it: for a service that inserts it in the same
 * statement as its own change (a data-modifying CTE, see `insertOutboxEntry`) to save a round trip.
 * Same content as `appendEvent` — ids, CloudEvents headers and the trace context active now.
 */
export function outboxEntry<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
  opts: AppendEventOptions,
): OutboxEntry {
  const id = opts.id ?? uuidv7();
  if (!UUID.test(id)) throw new Error(`appendEvent: event id must be a UUID, got ${JSON.stringify(id)}`);
  if (opts.source === "") throw new Error("appendEvent: source must not be empty");
  const headers: Record<string, string> = {
    "ce-specversion": "1.0",
    "ce-id": id,
    "ce-source": opts.source,
    "ce-type": schema.typeName,
    "ce-time": new Date().toISOString(),
    "content-type": "application/protobuf",
  };
  propagation.inject(context.active(), headers);
  const bytes = toBinary(schema, message);
  return {
    id,
    subject: schema.typeName,
    payload: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    headers: JSON.stringify(headers),
    published_at: null,
  };
}

/**
 * The insert of an outbox entry, for use as a CTE of the service's own statement
 * (`db.with("event", (q) => insertOutboxEntry(q, entry)).insertInto(...)`): it commits if and only
 * if that statement does.
 */
export function insertOutboxEntry<DB>(db: QueryCreator<DB>, entry: OutboxEntry) {
  return (db as unknown as QueryCreator<OutboxTables>).insertInto("kit_outbox").values(entry);
}

/**
 * Records an event in the caller's transaction: it is published (by the relay) if and only if
 * the transaction commits. The subject is `schema.typeName`; the payload is the binary protobuf;
 * the trace context active now is stored so the consumer's span joins the producer's trace.
 * Returns the event id (= CloudEvents `ce-id` = JetStream `Nats-Msg-Id`).
 */
export async function appendEvent<DB, Desc extends DescMessage>(
  trx: Transaction<DB>,
  schema: Desc,
  message: MessageShape<Desc>,
  opts: AppendEventOptions,
): Promise<string> {
  const entry = outboxEntry(schema, message, opts);
  await insertOutboxEntry(trx, entry).execute();
  return entry.id;
}
