import { fromBinary } from "@bufbuild/protobuf";
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
import type { EventHandler } from "@zero/kit/events/consumer";
import { DEAD_LETTER_STREAM, ensureDeadLetterStream } from "@zero/kit/events/streams";
import type { Logger } from "@zero/kit/log";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB } from "./db/schema.js";
import { isUuid } from "./delivery.js";
import { lockDeadLettersOfUser, upsertDeadLetter } from "./dead-letter-store.js";
import { isErased } from "./recipient-store.js";

// Copies this service's dead letters from ZERO_DLQ (`dlq.<durable>.<subject>`, written by the kit
// consumer after its bounded retries) into `dead_letters`, where admins list and replay them.
// One durable pull consumer per event consumer (`<durable>-dlq`, filtered on its prefix): the
// message is acked only after the row committed, so none is lost; a re-read is an upsert.
// A dead letter about a user already erased is not stored (acked and dropped): ZERO_DLQ keeps its
// copy for 30 days, and a late dead letter — or the whole stream re-read after this durable was
// reset — must not bring back what the erasure deleted (see eraseDeadLettersOfUser).

export interface DeadLetterIntake {
  stop(): Promise<void>;
}

const CONSUMER_NOT_FOUND = 10014;

export async function startDeadLetterIntake(opts: {
  nc: NatsConnection;
  db: Kysely<DB>;
  logger: Logger;
  /**
   * This service's event consumers' handlers, by durable name: whose dead letters to copy, and
   * the event schemas that tell which user a dead letter is about.
   */
  consumers: Readonly<Record<string, readonly EventHandler<DB>[]>>;
}): Promise<DeadLetterIntake> {
  const logger = opts.logger.child({ component: "dead-letter-intake" });
  await ensureDeadLetterStream(opts.nc);
  const jsm = await jetstreamManager(opts.nc);
  const js = jetstream(opts.nc);
  const running: { messages: ConsumerMessages; loop: Promise<void> }[] = [];

  for (const source of Object.keys(opts.consumers)) {
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
    const userId = userOf(opts.consumers[source] ?? [], subject, m.data);
    const stored = await opts.db.transaction().execute(async (trx) => {
      if (userId !== undefined) {
        await lockDeadLettersOfUser(trx, userId);
        if (await isErased(trx, userId)) return false;
      }
      await upsertDeadLetter(trx, uuidv7(), {
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
      return true;
    });
    if (!stored) {
      logger.info(
        { subject, event_id: eventId, consumer: source },
        "dead letter about an erased user dropped",
      );
      return;
    }
    logger.warn({ subject, event_id: eventId, consumer: source }, "event dead-lettered; listed for admins");
  }

  return {
    async stop() {
      for (const r of running) await r.messages.close();
      await Promise.all(running.map((r) => r.loop));
    },
  };
}

/**
 * The user a dead-lettered event is about: its `user_id` field (every event this service consumes
 * has one), when the payload decodes with the consumer's schema for the subject and holds a UUID.
 */
function userOf(
  handlers: readonly EventHandler<DB>[],
  subject: string,
  payload: Uint8Array,
): string | undefined {
  const schema = handlers.find((h) => h.schema.typeName === subject)?.schema;
  const field = schema?.fields.find((f) => f.name === "user_id" && f.fieldKind === "scalar");
  if (schema === undefined || field === undefined) return undefined;
  try {
    const value: unknown = (fromBinary(schema, payload) as Record<string, unknown>)[field.localName];
    return typeof value === "string" && isUuid(value) ? value.toLowerCase() : undefined;
  } catch {
    return undefined; // does not decode: stored as it is; erasure matches its bytes
  }
}
