import { jetstream } from "@nats-io/jetstream";
import {
  headers as natsHeaders,
  type NatsConnection,
  type QueuedIterator,
  type Status,
} from "@nats-io/transport-node";
import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { sql, type Kysely } from "kysely";
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
  /**
   * Passes run at once (default 1). A pass alternates database work (lock, mark, commit) with
   * publishing, each about half of its time; two passes overlap them (bench/events: 0.54× → ~0.6×
   * of the raw publish rate) and split the backlog through `SKIP LOCKED` as two replicas do — but
   * events then reach the stream in commit order only per pass: a PaymentSucceeded can overtake its
   * PaymentCreated. One pass keeps each replica's events in order, which consumers may rely on.
   */
  concurrency?: number;
}

export interface Relay {
  /** Publish now (call after committing a transaction that appended events). */
  wake(): void;
  /** Finishes the current pass and stops; unpublished rows stay for the next start. */
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5000;
const PRUNE_EVERY_MS = 60 * 60_000;
// Looked up per use, not at import: the global provider may be registered (or replaced) later.
const tracer = () => trace.getTracer("@zero/kit/events");

/**
 * Publishes outbox rows to JetStream, at least once, in any number of replicas:
 * each pass locks a batch with `FOR UPDATE SKIP LOCKED` (other replicas take other rows),
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

  const concurrency = Math.max(1, opts.concurrency ?? 1);
  let stopping = false;
  let wakeRequested = false;
  // One per pass loop that is sleeping (waiting for a wake, a reconnect or its backoff).
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

  async function publishRow(row: {
    id: string;
    subject: string;
    payload: Buffer;
    headers: Record<string, string>;
  }) {
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

  /** One transaction: lock a batch, publish it, mark what was acked. */
  async function pass(): Promise<{ published: number; error?: Error }> {
    return db.transaction().execute(async (trx) => {
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
      if (rows.length === 0) return { published: 0 };
      const results = await Promise.allSettled(rows.map(publishRow));
      const acked = rows.filter((_, i) => results[i]?.status === "fulfilled").map((row) => row.id);
      if (acked.length > 0) {
        await trx
          .updateTable("kit_outbox")
          .set({ published_at: sql<Date>`now()` })
          .where("id", "in", acked)
          .execute();
      }
      const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failure === undefined) return { published: acked.length };
      const error =
        failure.reason instanceof Error
          ? failure.reason
          : new Error("publish failed", { cause: failure.reason });
      return { published: acked.length, error };
    });
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

  /** One pass loop; `primary` also logs state changes and prunes (once per relay, not per loop). */
  async function run(primary: boolean): Promise<void> {
    let failures = 0;
    let lastPrune = 0;
    while (!stopping) {
      wakeRequested = false;
      let more = false;
      try {
        if (!connected) throw new Error("NATS connection is down");
        const { published, error } = await pass();
        if (error !== undefined) throw error;
        if (failures > 0 && primary) logger.info({ failedPasses: failures }, "publishing events again");
        failures = 0;
        more = published === batchSize;
      } catch (err) {
        failures++;
        if (failures === 1 && primary)
          logger.warn({ err }, "cannot publish events; they stay in the outbox, retrying with backoff");
      }
      if (primary && failures === 0 && Date.now() - lastPrune > PRUNE_EVERY_MS) {
        lastPrune = Date.now();
        await prune().catch((err: unknown) => logger.warn({ err }, "pruning published events failed"));
      }
      if (stopping) break;
      if (failures > 0) {
        // Not wakeable: services call wake() after every commit, which must not defeat the backoff.
        await sleep(Math.min(100 * 2 ** (failures - 1), MAX_BACKOFF_MS), false);
      } else if (!more && !wakeRequested) {
        await sleep(pollIntervalMs, true);
      }
    }
  }

  const running = Promise.all(Array.from({ length: concurrency }, (_, i) => run(i === 0)));
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
