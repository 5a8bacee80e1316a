import { jetstream } from "@nats-io/jetstream";
import {
  headers as natsHeaders,
  type NatsConnection,
  type QueuedIterator,
  type Status,
} from "@nats-io/transport-node";
import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { sql, type ControlledTransaction, type Kysely } from "kysely";
import type { Logger } from "pino";
import type { OutboxTables } from "./outbox.js";
import { natsHeadersSetter } from "./trace-headers.js";

export interface RelayOptions<DB> {
  db: Kysely<DB>;
  nc: NatsConnection;
  logger: Logger;
  /** Rows per transaction, published concurrently (default 200). */
  batchSize?: number;
  /** Idle poll for rows committed without a `wake()` (other replicas, crashed passes); default 1000. */
  pollIntervalMs?: number;
  /** How long to wait for each JetStream ack (default 5000). */
  publishTimeoutMs?: number;
  /** How long published rows are kept (default 7 days). */
  retainPublishedMs?: number;
}

export interface Relay {
  /** Publish now (call after committing a transaction that appended events). */
  wake(): void;
  /** Finishes the current pass and stops; unpublished rows stay for the next start. */
  stop(): Promise<void>;
}

/** An unpublished outbox row, as the relay reads it. */
type Row = Pick<OutboxTables["kit_outbox"], "id" | "subject" | "payload"> & {
  headers: Record<string, string>;
};

const MAX_BACKOFF_MS = 5000;
const PRUNE_EVERY_MS = 60 * 60_000;
// Looked up per use, not at import: the global provider may be registered (or replaced) later.
const tracer = () => trace.getTracer("@zero/kit/events");

/**
 * Publishes outbox rows to JetStream, at least once, in any number of replicas:
 * each batch is locked with `FOR UPDATE SKIP LOCKED` (other replicas take other rows),
 * publishes it concurrently with `Nats-Msg-Id` = event id (JetStream drops the duplicates a retry
 * can produce inside its window), marks the acked rows and commits. While NATS or Postgres is
 * unavailable the rows stay and the relay backs off (up to 5 s), logging once per state change.
 *
 * Published rows are kept 7 days (then pruned here): they answer "was event X published, when?"
 * during incidents and allow re-publishing to rebuild a stream, and the partial index keeps the
 * relay's own reads independent of their number.
 */
export function startRelay<DB>(opts: RelayOptions<DB>): Relay {
  const db = opts.db as unknown as Kysely<OutboxTables>;
  const logger = opts.logger.child({ component: "outbox-relay" });
  const batchSize = opts.batchSize ?? 200;
  const pollIntervalMs = opts.pollIntervalMs ?? 1000;
  const publishTimeoutMs = opts.publishTimeoutMs ?? 5000;
  const retainSeconds = Math.round((opts.retainPublishedMs ?? 7 * 24 * 3600_000) / 1000);
  const js = jetstream(opts.nc);

  let stopping = false;
  let wakeRequested = false;
  // The loop, while it sleeps (waiting for a wake, a reconnect or its backoff).
  const sleepers = new Set<{ wakeable: boolean; fire(): void }>();

  // Requests made while disconnected would sit in the client's buffer and hold the row locks
  // until they time out; skip passes instead and start one as soon as the client is back.
  let connected = !opts.nc.isClosed();
  const statuses = opts.nc.status();
  (async () => {
    for await (const status of statuses) {
      if (status.type === "disconnect") connected = false;
      if (status.type === "reconnect") {
        connected = true;
        for (const sleeper of [...sleepers]) sleeper.fire();
      }
    }
  })().catch((err: unknown) => logger.warn({ err }, "nats status stream failed"));

  async function publishRow(row: Row) {
    // Continue the trace that was active when the event was appended.
    const parent = propagation.extract(ROOT_CONTEXT, row.headers);
    const span = tracer().startSpan(
      `send ${row.subject}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "send",
          "messaging.destination.name": row.subject,
          "messaging.message.id": row.id,
        },
      },
      parent,
    );
    const h = natsHeaders();
    for (const [key, value] of Object.entries(row.headers)) h.set(key, value);
    // Overwrites the stored traceparent with this span (same trace); without a registered
    // propagator the stored one is published unchanged.
    propagation.inject(trace.setSpan(parent, span), h, natsHeadersSetter);
    try {
      await js.publish(row.subject, row.payload, { msgID: row.id, headers: h, timeout: publishTimeoutMs });
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  }

  interface LockedBatch {
    trx: ControlledTransaction<OutboxTables>;
    rows: Row[];
  }

  /** Opens a transaction and locks the oldest unpublished rows no other transaction holds. */
  async function lockBatch(): Promise<LockedBatch> {
    const trx = await db.startTransaction().execute();
    try {
      const rows = await trx
        .selectFrom("kit_outbox")
        .select(["id", "subject", "payload", "headers"])
        .where("published_at", "is", null)
        .orderBy("created_at")
        .orderBy("id")
        .limit(batchSize)
        .forUpdate()
        .skipLocked()
        .execute();
      return { trx, rows };
    } catch (err) {
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      throw err;
    }
  }

  /** Marks the acked rows of a batch and commits it (releasing its locks). */
  async function finishBatch(batch: LockedBatch, acked: string[]): Promise<void> {
    try {
      if (acked.length > 0) {
        await batch.trx
          .updateTable("kit_outbox")
          .set({ published_at: sql<Date>`now()` })
          .where(sql<boolean>`id = any(${acked}::uuid[])`)
          .execute();
      }
      await batch.trx.commit().execute();
    } catch (err) {
      // Rolled back: the rows are published again by a later pass; Nats-Msg-Id deduplicates them.
      await batch.trx
        .rollback()
        .execute()
        .catch(() => undefined);
      throw err;
    }
  }

  /** Publishes a batch's rows concurrently (in order on the connection); which were acked. */
  async function publishBatch(rows: Row[]): Promise<{ acked: string[]; error?: Error }> {
    const results = await Promise.allSettled(rows.map(publishRow));
    const acked = rows.filter((_, i) => results[i]?.status === "fulfilled").map((row) => row.id);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure === undefined) return { acked };
    const error =
      failure.reason instanceof Error
        ? failure.reason
        : new Error("publish failed", { cause: failure.reason });
    return { acked, error };
  }

  /**
   * Publishes the backlog, batch after batch, pipelined: while batch N is being published, the
   * next transaction already locks batch N+1 (`SKIP LOCKED` passes over N's rows), and batch N's
   * mark-and-commit runs while N+1 and N+2 are being published (up to four connections).
   * Publishing itself stays strictly sequential — N+1's first publish is sent after N's last ack —
   * so one replica's events reach the stream in commit order, and the database work no longer
   * alternates with it (a one-batch-at-a-time relay spent about half of its time waiting on
   * Postgres: bench/events). Two replicas still interleave, each in its own order.
   */
  async function drain(): Promise<{ published: number; error?: Error }> {
    let published = 0;
    const finishing: Promise<void>[] = [];
    // Every open transaction is in exactly one of these (or in `finishing`), so whatever throws,
    // the finally below closes it: none may keep its connection and its row locks.
    let batch: LockedBatch | undefined = await lockBatch();
    let next: Promise<LockedBatch> | undefined;
    try {
      while (batch !== undefined && batch.rows.length > 0) {
        const current: LockedBatch = batch;
        batch = undefined;
        next = current.rows.length === batchSize && !stopping ? lockBatch() : undefined;
        // Keep `next` from rejecting unobserved while we publish; it is awaited below.
        next?.catch(() => undefined);
        const { acked, error } = await publishBatch(current.rows);
        const finished = finishBatch(current, acked);
        // Awaited below; until then a failed commit must not count as an unhandled rejection.
        finished.catch(() => undefined);
        finishing.push(finished);
        published += acked.length;
        // Commits may complete in any order (their rows are on the stream already); two at most.
        if (finishing.length > 2) await finishing.shift();
        if (error !== undefined) {
          await Promise.all(finishing);
          return { published, error };
        }
        if (next !== undefined) {
          const locked = next;
          next = undefined;
          batch = await locked;
        }
      }
      await Promise.all(finishing);
      return { published };
    } finally {
      // An empty, abandoned or not yet used batch still has an open transaction.
      const open = [batch, await next?.catch(() => undefined)];
      for (const unused of open) {
        if (unused !== undefined)
          await unused.trx
            .rollback()
            .execute()
            .catch(() => undefined);
      }
      await Promise.allSettled(finishing);
    }
  }

  async function prune(): Promise<void> {
    const result = await db
      .deleteFrom("kit_outbox")
      .where("published_at", "<", sql<Date>`now() - ${retainSeconds} * interval '1 second'`)
      .executeTakeFirst();
    if (result.numDeletedRows > 0n)
      logger.info({ rows: Number(result.numDeletedRows) }, "pruned published events");
  }

  function sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = { wakeable, fire: done };
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        sleepers.delete(sleeper);
        resolve();
      }
      sleepers.add(sleeper);
    });
  }

  async function run(): Promise<void> {
    let failures = 0;
    let lastPrune = 0;
    while (!stopping) {
      wakeRequested = false;
      try {
        if (!connected) throw new Error("NATS connection is down");
        const { error } = await drain();
        if (error !== undefined) throw error;
        if (failures > 0) logger.info({ failedPasses: failures }, "publishing events again");
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1)
          logger.warn({ err }, "cannot publish events; they stay in the outbox, retrying with backoff");
      }
      if (failures === 0 && Date.now() - lastPrune > PRUNE_EVERY_MS) {
        lastPrune = Date.now();
        await prune().catch((err: unknown) => logger.warn({ err }, "pruning published events failed"));
      }
      if (stopping) break;
      if (failures > 0) {
        // Not wakeable: services call wake() after every commit, which must not defeat the backoff.
        await sleep(Math.min(100 * 2 ** (failures - 1), MAX_BACKOFF_MS), false);
      } else if (!wakeRequested) {
        await sleep(pollIntervalMs, true);
      }
    }
  }

  const running = run();
  return {
    wake() {
      wakeRequested = true;
      for (const sleeper of [...sleepers]) if (sleeper.wakeable) sleeper.fire();
    },
    async stop() {
      stopping = true;
      // Typed as AsyncIterable, it is a QueuedIterator: stop() detaches it from the connection.
      (statuses as Partial<QueuedIterator<Status>>).stop?.();
      for (const sleeper of [...sleepers]) sleeper.fire();
      await running;
    },
  };
}
