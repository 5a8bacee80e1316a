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

/** Retention: deletes every dead letter dead-lettered more than `retentionMs` ago (database clock). */
export async function deleteDeadLettersOlderThan(db: Kysely<DB>, retentionMs: number): Promise<number> {
  const result = await db
    .deleteFrom("dead_letters")
    .where(
      "dead_lettered_at",
      "<",
      sql<Date>`now() - make_interval(secs => ${retentionMs / 1000}::double precision)`,
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Serialises, per user, the intake's "is this user erased? then store" with the erasure's "delete
 * what mentions the user": without it a dead letter stored while the erasure runs would be missed
 * by the erasure's delete and pass the intake's tombstone check. Held until the transaction ends.
 */
export async function lockDeadLettersOfUser(trx: Kysely<DB>, userId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`dead-letters:user:${userId.toLowerCase()}`}, 0))`.execute(
    trx,
  );
}

/**
 * GDPR erasure: deletes the dead letters whose stored event mentions the user — their id (any
 * field, any event type, even a payload that does not decode) or one of their addresses as a
 * protobuf string field (a receipt address) — and those whose error text names the user's id.
 * Deleted rather than blanked: a dead letter's only use is to be replayed, which needs the
 * payload, and a replay about an erased user would send nothing anyway (tombstone); the error
 * text can itself hold personal data, so a blanked row would be an empty shell kept for nothing.
 * The match scans the table: dead letters are few and pruned after their retention period.
 * Call it inside the erasure's transaction, after the tombstone is written.
 */
export async function eraseDeadLettersOfUser(
  db: Kysely<DB>,
  userId: string,
  emails: readonly string[],
): Promise<number> {
  await lockDeadLettersOfUser(db, userId);
  const ids = [...new Set([userId, userId.toLowerCase()])];
  const needles = [...ids.map((id) => Buffer.from(id, "utf8")), ...emails.map(protobufString)];
  const result = await db
    .deleteFrom("dead_letters")
    .where((eb) =>
      eb.or([
        ...needles.map((needle) => sql<boolean>`position(${needle}::bytea in payload) > 0`),
        ...ids.flatMap((id) => [
          sql<boolean>`strpos(error, ${id}) > 0`,
          sql<boolean>`strpos(coalesce(last_replay_error, ''), ${id}) > 0`,
        ]),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * A string as protobuf encodes a field's value: its length (varint), then its UTF-8 bytes. The
 * length prefix makes the match exact: `bob@example.com` does not match inside `jimbob@example.com`
 * or `bob@example.com.au`.
 */
function protobufString(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const length: number[] = [];
  let n = bytes.length;
  while (n >= 0x80) {
    length.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  length.push(n);
  return Buffer.concat([Buffer.from(length), bytes]);
}
