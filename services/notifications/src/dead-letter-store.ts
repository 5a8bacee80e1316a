import { sql, type Kysely } from "kysely";
import type { DB, DeadLetterRow } from "./db/schema.js";

// Queries over `dead_letters`: the consumers' dead letters copied out of ZERO_DLQ so admins can
// list them with filters and replay them. Each takes the pool or a transaction.

export interface NewDeadLetter {
  dlqKey: string;
  consumer: string;
  subject: string;
  eventId: string | null;
  error: string;
  deliveries: number;
  payload: Uint8Array;
  headers: Record<string, string>;
  deadLetteredAt: Date;
}

/**
 * One row per consumer and event: the same dead letter read twice is stored once, and an event
 * dead-lettered again later (after a consumer reset) reopens its row with the new error.
 */
export async function upsertDeadLetter(db: Kysely<DB>, id: string, d: NewDeadLetter): Promise<void> {
  await db
    .insertInto("dead_letters")
    .values({
      id,
      dlq_key: d.dlqKey,
      consumer: d.consumer,
      subject: d.subject,
      event_id: d.eventId,
      error: d.error,
      deliveries: d.deliveries,
      payload: Buffer.from(d.payload),
      headers: JSON.stringify(d.headers),
      dead_lettered_at: d.deadLetteredAt,
    })
    .onConflict((oc) =>
      oc
        .column("dlq_key")
        .doUpdateSet({
          error: d.error,
          deliveries: d.deliveries,
          dead_lettered_at: d.deadLetteredAt,
          resolved_at: null,
        })
        .where("dead_letters.dead_lettered_at", "<", d.deadLetteredAt),
    )
    .execute();
}

export async function findDeadLetter(db: Kysely<DB>, id: string): Promise<DeadLetterRow | undefined> {
  return db.selectFrom("dead_letters").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Newest first, after the cursor (dead_lettered_at, id) when given. */
export async function listDeadLetters(
  db: Kysely<DB>,
  opts: { limit: number; includeResolved: boolean; after?: { at: Date; id: string } },
): Promise<DeadLetterRow[]> {
  let q = db.selectFrom("dead_letters").selectAll();
  if (!opts.includeResolved) q = q.where("resolved_at", "is", null);
  const after = opts.after;
  if (after !== undefined) {
    q = q.where((eb) =>
      eb.or([
        eb("dead_lettered_at", "<", after.at),
        eb.and([eb("dead_lettered_at", "=", after.at), eb("id", "<", after.id)]),
      ]),
    );
  }
  return q.orderBy("dead_lettered_at", "desc").orderBy("id", "desc").limit(opts.limit).execute();
}

export async function recordReplay(
  db: Kysely<DB>,
  id: string,
  outcome: { resolved: true } | { resolved: false; error: string },
): Promise<DeadLetterRow> {
  return db
    .updateTable("dead_letters")
    .set((eb) => ({
      replays: eb("replays", "+", 1),
      ...(outcome.resolved
        ? { resolved_at: sql<Date>`now()`, last_replay_error: null }
        : { last_replay_error: outcome.error }),
    }))
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirstOrThrow();
}
