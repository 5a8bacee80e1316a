import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type ConsumerMessages,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { DEAD_LETTER_STREAM, ensureDeadLetterStream } from "@zero/kit/events/streams";
import type { Logger } from "@zero/kit/log";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB } from "./db/schema.js";
import { isUuid } from "./delivery.js";
import { upsertDeadLetter } from "./dead-letter-store.js";

// Copies this service's dead letters from ZERO_DLQ (`dlq.<durable>.<subject>`, written by the kit
// consumer after its bounded retries) into `dead_letters`, where admins list and replay them.
// One durable pull consumer per event consumer (`<durable>-dlq`, filtered on its prefix): the
// message is acked only after the row committed, so none is lost; a re-read is an upsert.

export interface DeadLetterIntake {
  stop(): Promise<void>;
}

const CONSUMER_NOT_FOUND = 10014;

export async function startDeadLetterIntake(opts: {
  nc: NatsConnection;
  db: Kysely<DB>;
  logger: Logger;
  /** The durable names of this service's event consumers. */
  consumers: readonly string[];
}): Promise<DeadLetterIntake> {
  const logger = opts.logger.child({ component: "dead-letter-intake" });
  await ensureDeadLetterStream(opts.nc);
  const jsm = await jetstreamManager(opts.nc);
  const js = jetstream(opts.nc);
  const running: { messages: ConsumerMessages; loop: Promise<void> }[] = [];

  for (const source of opts.consumers) {
    const durable = `${source}-dlq`;
    try {
      await jsm.consumers.info(DEAD_LETTER_STREAM, durable);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === CONSUMER_NOT_FOUND)) throw err;
      await jsm.consumers.add(DEAD_LETTER_STREAM, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: `dlq.${source}.>`,
        ack_wait: nanos(30_000),
      });
    }
    const consumer = await js.consumers.get(DEAD_LETTER_STREAM, durable);
    const messages = await consumer.consume({ max_messages: 20 });
    const loop = (async () => {
      for await (const m of messages) {
        try {
          await store(m, source);
          m.ack();
        } catch (err) {
          logger.warn(
            { err, seq: m.info.streamSequence },
            "cannot store a dead letter yet; it will come back",
          );
          m.nak(2_000);
        }
      }
    })().catch((err: unknown) => logger.error({ err }, "dead-letter intake stopped"));
    running.push({ messages, loop });
  }

  async function store(m: JsMsg, source: string): Promise<void> {
    const h = m.headers;
    const get = (key: string): string | undefined => {
      const value = h?.get(key);
      return value === undefined || value === "" ? undefined : value;
    };
    const original: Record<string, string> = {};
    for (const key of h?.keys() ?? []) {
      const lower = key.toLowerCase();
      if (lower.startsWith("nats-") || lower.startsWith("zero-dlq-")) continue;
      original[key] = h?.get(key) ?? "";
    }
    const eventId = get("ce-id");
    const subject = get("zero-dlq-subject") ?? m.subject.slice(`dlq.${source}.`.length);
    await upsertDeadLetter(opts.db, uuidv7(), {
      dlqKey: get("Nats-Msg-Id") ?? `${source}:seq:${m.info.streamSequence}`,
      consumer: get("zero-dlq-consumer") ?? source,
      subject,
      eventId: eventId !== undefined && isUuid(eventId) ? eventId : null,
      error: get("zero-dlq-error") ?? "unknown",
      deliveries: Number(get("zero-dlq-deliveries") ?? 0) || 0,
      payload: m.data,
      headers: original,
      deadLetteredAt: new Date(Math.floor(m.info.timestampNanos / 1e6)),
    });
    logger.warn({ subject, event_id: eventId, consumer: source }, "event dead-lettered; listed for admins");
  }

  return {
    async stop() {
      for (const r of running) await r.messages.close();
      await Promise.all(running.map((r) => r.loop));
    },
  };
}
