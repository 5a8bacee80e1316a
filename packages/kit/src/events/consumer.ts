import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type ConsumerConfig,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers as natsHeaders, nanos, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Kysely, Transaction } from "kysely";
import type { Logger } from "pino";
import type { OutboxTables } from "./outbox.js";
import { DEAD_LETTER_STREAM, ensureDeadLetterStream } from "./streams.js";
import { natsHeadersGetter } from "./trace-headers.js";

export interface EventContext<DB> {
  /** CloudEvents `ce-id` (= the producer's outbox id). */
  eventId: string;
  /** The transaction the inbox row was written in: write the handler's effects here. */
  trx: Transaction<DB>;
  headers: MsgHdrs;
  subject: string;
  /** 1 on the first delivery. */
  deliveryCount: number;
}

export interface EventHandler<DB, Desc extends DescMessage = DescMessage> {
  schema: Desc;
  /** Throwing rolls the transaction back and the event comes again later (nak with backoff). */
  handle(message: MessageShape<Desc>, ctx: EventContext<DB>): Promise<void>;
}

export interface ConsumerOptions<DB, T extends readonly DescMessage[]> {
  db: Kysely<DB>;
  nc: NatsConnection;
  logger: Logger;
  stream: string;
  /** Durable consumer name, `<consumer>-<purpose>`; also the inbox key. */
  durable: string;
  /** One per event type (subject = the message's full proto name). */
  handlers: { [K in keyof T]: EventHandler<DB, T[K]> };
  /** Handler attempts before the event is dead-lettered (default 5). */
  maxDeliver?: number;
  /** First retry delay; doubles per attempt, capped at 60 s (default 1000). */
  backoffMs?: number;
  /** Redelivery when a handler neither acks nor naks in time (default 30 s). */
  ackWaitMs?: number;
  /** Events handled at once (default 1: in stream order, barring retries). */
  concurrency?: number;
  /**
   * Where a durable starts reading the stream, applied only when the durable is created; an
   * existing durable keeps its position whatever this says (changing it would skip or replay
   * events). `"all"` (default): from the oldest event the stream still holds — for consumers whose
   * state is built from the events (an address book, a read model), so nothing retained is missed.
   * `"new"`: only events published after the durable exists — for consumers that react to what
   * happens from now on and for which acting on old events would be wrong (e.g. a new mail or
   * webhook consumer added to a stream holding days of events, which must not fire for all of them).
   */
  deliverPolicy?: "all" | "new";
}

export interface EventConsumer {
  /** Stops fetching, returns unstarted messages for redelivery, waits for running handlers. */
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 60_000;
// Deliveries the server allows beyond `maxDeliver`: if publishing a dead letter fails (NATS
// flapping) the event must come back for another try rather than be dropped by the server.
const DEAD_LETTER_RETRIES = 3;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Looked up per use, not at import: the global provider may be registered (or replaced) later.
const tracer = () => trace.getTracer("@zero/kit/events");

/**
 * Runs a durable pull consumer (explicit ack). Each event takes effect once: its inbox row
 * (consumer, event id) and the handler's writes commit in one transaction, and a redelivered
 * event whose row exists is acked without running the handler. A failing handler is retried with
 * backoff; after `maxDeliver` attempts — or at once for a message that cannot be decoded — the
 * event goes to `ZERO_DLQ` as `dlq.<durable>.<subject>` with its payload, its headers and
 * `zero-dlq-error`, `zero-dlq-consumer`, `zero-dlq-deliveries`, then is terminated.
 * Events of other types on the stream are acked and skipped.
 */
export async function startConsumer<DB, const T extends readonly DescMessage[]>(
  opts: ConsumerOptions<DB, T>,
): Promise<EventConsumer> {
  const { nc, stream, durable } = opts;
  const logger = opts.logger.child({ component: "event-consumer", durable });
  const maxDeliver = opts.maxDeliver ?? 5;
  const backoffMs = opts.backoffMs ?? 1000;
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const handlers = new Map<string, EventHandler<DB>>();
  for (const handler of opts.handlers as readonly EventHandler<DB>[]) {
    if (handlers.has(handler.schema.typeName)) {
      throw new Error(`startConsumer(${durable}): two handlers for ${handler.schema.typeName}`);
    }
    handlers.set(handler.schema.typeName, handler);
  }
  if (handlers.size === 0) throw new Error(`startConsumer(${durable}): no handlers`);
  if (!/^[A-Za-z0-9_-]+$/.test(durable)) {
    throw new Error(
      `startConsumer: durable name ${JSON.stringify(durable)} may hold only letters, digits, - and _`,
    );
  }

  const jsm = await jetstreamManager(nc);
  await ensureDeadLetterStream(nc);
  const streamSubjects = (await jsm.streams.info(stream)).config.subjects;
  // NATS 2.9 takes one filter subject: the handler's type when there is one, otherwise the
  // stream's subject when it has one; otherwise no filter, and other types are skipped here.
  const filter =
    handlers.size === 1
      ? [...handlers.keys()][0]
      : streamSubjects.length === 1
        ? streamSubjects[0]
        : undefined;
  await upsertConsumer(jsm, stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: opts.deliverPolicy === "new" ? DeliverPolicy.New : DeliverPolicy.All,
    max_deliver: maxDeliver + DEAD_LETTER_RETRIES,
    ack_wait: nanos(opts.ackWaitMs ?? 30_000),
    // Explicitly undefined when unfiltered, so an update drops a filter set by an earlier version.
    filter_subject: filter,
  });

  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, durable);
  const messages = await consumer.consume({ max_messages: Math.max(10, concurrency * 2) });
  (async () => {
    for await (const status of messages.status()) {
      if (status.type === "heartbeats_missed" && status.count === 2)
        logger.warn("consumer: heartbeats missed; NATS may be down");
      if (
        status.type === "consumer_not_found" ||
        status.type === "stream_not_found" ||
        status.type === "consumer_deleted"
      ) {
        logger.warn({ status: status.type }, "consumer: server reports a missing resource; retrying");
      }
    }
  })().catch((err: unknown) => logger.warn({ err }, "consumer status stream failed"));

  const db = opts.db as unknown as Kysely<OutboxTables>;

  function nakDelay(deliveryCount: number): number {
    return Math.min(backoffMs * 2 ** Math.max(0, deliveryCount - 1), MAX_BACKOFF_MS);
  }

  async function deadLetter(m: JsMsg, eventId: string | undefined, reason: string): Promise<void> {
    const h = natsHeaders();
    for (const key of m.headers?.keys() ?? []) {
      // Nats-Msg-Id etc. belong to the original publish; the dead letter gets its own id.
      if (key.toLowerCase().startsWith("nats-")) continue;
      for (const value of m.headers?.values(key) ?? []) h.append(key, value);
    }
    h.set("zero-dlq-error", headerSafe(reason));
    h.set("zero-dlq-consumer", durable);
    h.set("zero-dlq-deliveries", String(m.info.deliveryCount));
    h.set("zero-dlq-stream", stream);
    h.set("zero-dlq-subject", m.subject);
    try {
      await js.publish(`dlq.${durable}.${m.subject}`, m.data, {
        headers: h,
        msgID: `${durable}:${eventId ?? `${stream}:${m.info.streamSequence}`}`,
      });
      m.term();
      logger.error(
        { subject: m.subject, eventId, deliveries: m.info.deliveryCount, reason },
        `event dead-lettered to ${DEAD_LETTER_STREAM}`,
      );
    } catch (err) {
      logger.warn(
        { err, subject: m.subject, eventId },
        "cannot dead-letter the event yet; it will come back",
      );
      m.nak(nakDelay(m.info.deliveryCount));
    }
  }

  async function processMessage(m: JsMsg): Promise<void> {
    const h = m.headers ?? natsHeaders();
    const eventId = headerValue(h, "ce-id") ?? headerValue(h, "Nats-Msg-Id");
    const parent = propagation.extract(ROOT_CONTEXT, h, natsHeadersGetter);
    const span = tracer().startSpan(
      `process ${m.subject}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "process",
          "messaging.destination.name": m.subject,
          "messaging.consumer.group.name": durable,
          "messaging.message.id": eventId ?? "",
          "messaging.nats.delivery_count": m.info.deliveryCount,
        },
      },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), () => handleWithin(m, h, eventId));
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    } finally {
      span.end();
    }
  }

  /** Resolves when the message was acked, dead-lettered or skipped; rejects (after nak) on handler failure. */
  async function handleWithin(m: JsMsg, h: MsgHdrs, eventId: string | undefined): Promise<void> {
    const handler = handlers.get(m.subject);
    if (handler === undefined) {
      logger.info({ subject: m.subject }, "no handler for this event type; acking");
      m.ack();
      return;
    }
    if (eventId === undefined || !UUID.test(eventId)) {
      await deadLetter(m, undefined, "no UUID event id in the ce-id (or Nats-Msg-Id) header");
      return;
    }
    let message: MessageShape<DescMessage>;
    try {
      message = fromBinary(handler.schema, m.data);
    } catch (err) {
      // A message that does not decode never will: no point retrying it.
      await deadLetter(m, eventId, `cannot decode ${handler.schema.typeName}: ${(err as Error).message}`);
      return;
    }
    try {
      const applied = await db.transaction().execute(async (trx) => {
        const fresh = await trx
          .insertInto("kit_inbox")
          .values({ consumer: durable, event_id: eventId })
          .onConflict((oc) => oc.columns(["consumer", "event_id"]).doNothing())
          .returning("event_id")
          .executeTakeFirst();
        if (fresh === undefined) return false;
        await handler.handle(message, {
          eventId,
          trx: trx as unknown as Transaction<DB>,
          headers: h,
          subject: m.subject,
          deliveryCount: m.info.deliveryCount,
        });
        return true;
      });
      if (!applied) logger.debug({ eventId, subject: m.subject }, "event already handled; acking");
      m.ack();
    } catch (err) {
      if (m.info.deliveryCount >= maxDeliver) {
        await deadLetter(m, eventId, (err as Error).message ?? String(err));
      } else {
        logger.warn(
          { err, eventId, subject: m.subject, deliveries: m.info.deliveryCount },
          "event handler failed; will retry",
        );
        m.nak(nakDelay(m.info.deliveryCount));
      }
      throw err;
    }
  }

  let stopping = false;
  const inflight = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const m of messages) {
      if (stopping) {
        m.nak(); // fetched but not started: let another replica (or the next start) take it now
        continue;
      }
      const p = processMessage(m).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= concurrency) await Promise.race(inflight);
    }
  })();
  const done = loop
    .catch((err: unknown) => logger.error({ err }, "consumer loop failed"))
    .then(() => Promise.all(inflight));

  return {
    async stop() {
      stopping = true;
      await messages.close();
      await done;
    },
  };
}

async function upsertConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10014) {
      await jsm.consumers.add(stream, config);
      return;
    }
    throw err;
  }
  // The server refuses to change these on an existing durable; leaving out `deliver_policy` also
  // keeps the durable's position whatever the caller's `deliverPolicy` now says.
  const { durable_name: _name, deliver_policy: _policy, ack_policy: _ack, ...changeable } = config;
  try {
    await jsm.consumers.update(stream, config.durable_name, changeable);
  } catch (err) {
    throw new Error(
      `consumer ${config.durable_name} on ${stream} exists with a configuration that cannot be changed to ` +
        `${JSON.stringify(changeable)}: delete it or use a new durable name (${(err as Error).message})`,
      { cause: err },
    );
  }
}

function headerValue(h: MsgHdrs, key: string): string | undefined {
  const value = h.get(key);
  return value === "" ? undefined : value;
}

/** Header values cannot hold CR/LF; keep them short. */
function headerSafe(text: string): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, 1000);
}
