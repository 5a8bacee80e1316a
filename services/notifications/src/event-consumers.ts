import { jetstreamManager, JetStreamApiError } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { startConsumer, type EventConsumer, type EventHandler } from "@zero/kit/events/consumer";
import { connectNats } from "@zero/kit/events/nats";
import { ensureStream, type StreamSpec } from "@zero/kit/events/streams";
import type { Logger } from "@zero/kit/log";
import type { Kysely } from "kysely";
import { AUTH_EVENTS_DURABLE } from "./auth-events.js";
import type { DB } from "./db/schema.js";
import { startDeadLetterIntake, type DeadLetterIntake } from "./dead-letter-intake.js";
import { PAYMENT_EVENTS_DURABLE } from "./payment-events.js";

// The service's NATS side, started in the background so the API serves while NATS is down: the
// durable consumers of auth's and payments' events, and the intake of their dead letters. The
// streams belong to their producers: this service only creates one that does not exist yet (so it
// can start first) and never changes an existing one — the producer's settings win.

export const CONSUMED_STREAMS = {
  [AUTH_EVENTS_DURABLE]: { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] },
  [PAYMENT_EVENTS_DURABLE]: { name: "ZERO_PAYMENTS", subjects: ["zero.payments.v1.>"] },
} as const;

export interface EventConsumers {
  /** Readiness: rejects until NATS is connected and every consumer runs. */
  check(): Promise<void>;
  stop(): Promise<void>;
}

export interface EventConsumerOptions {
  db: Kysely<DB>;
  natsUrl: string;
  logger: Logger;
  handlers: Record<keyof typeof CONSUMED_STREAMS, EventHandler<DB>[]>;
  /** Handler attempts before an event is dead-lettered. */
  maxDeliver: number;
  /** First retry delay of a failing event (doubles per attempt). */
  backoffMs: number;
  /** Events handled at once per consumer (mail has no ordering to keep). */
  concurrency: number;
  /** Redelivery of an event fetched but neither acked nor nacked (its handler's process died). */
  ackWaitMs: number;
  /** Called shortly after an event was handled: the delivery worker looks for the new mail. */
  onHandled: () => void;
}

// After the handler returns, the kit commits the inbox transaction and then acks: wake the worker
// a moment later so it finds the committed row (the worker's poll covers the rare miss).
const WAKE_AFTER_MS = 20;

export function startEventConsumers(opts: EventConsumerOptions): EventConsumers {
  const { logger } = opts;
  const aborted = new AbortController();
  let nc: NatsConnection | undefined;
  const consumers = new Map<string, EventConsumer>();
  let intake: DeadLetterIntake | undefined;
  let ready = false;

  const withWake = (handlers: EventHandler<DB>[]): EventHandler<DB>[] =>
    handlers.map((h) => ({
      schema: h.schema,
      async handle(message, ctx) {
        await h.handle(message, ctx);
        setTimeout(opts.onHandled, WAKE_AFTER_MS).unref();
      },
    }));

  const starting = (async () => {
    nc = await connectNats(opts.natsUrl, logger, { signal: aborted.signal, name: "notifications" });
    for (let attempt = 1; ; attempt++) {
      try {
        for (const [durable, stream] of Object.entries(CONSUMED_STREAMS)) {
          if (consumers.has(durable)) continue;
          await createStreamIfMissing(nc, { name: stream.name, subjects: [...stream.subjects] });
          aborted.signal.throwIfAborted();
          const consumer = await startConsumer({
            db: opts.db,
            nc,
            logger,
            stream: stream.name,
            durable,
            handlers: withWake(opts.handlers[durable as keyof typeof CONSUMED_STREAMS]),
            maxDeliver: opts.maxDeliver,
            backoffMs: opts.backoffMs,
            concurrency: opts.concurrency,
            ackWaitMs: opts.ackWaitMs,
          });
          consumers.set(durable, consumer);
        }
        intake ??= await startDeadLetterIntake({
          nc,
          db: opts.db,
          logger,
          consumers: opts.handlers,
        });
        break;
      } catch (err) {
        aborted.signal.throwIfAborted();
        if (attempt === 1) logger.warn({ err }, "cannot start the event consumers yet; retrying");
        await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 5000)));
        aborted.signal.throwIfAborted();
      }
    }
    ready = true;
    logger.info({ consumers: Object.keys(CONSUMED_STREAMS) }, "event consumers started");
  })();
  starting.catch((err: unknown) => {
    if (!aborted.signal.aborted) logger.error({ err }, "event consumers could not start");
  });

  return {
    async check() {
      if (nc === undefined || !ready) throw new Error("event consumers are starting (NATS unreachable?)");
      if (nc.isClosed()) throw new Error("NATS connection closed");
      await nc.flush();
    },
    async stop() {
      aborted.abort();
      await starting.catch(() => undefined);
      await intake?.stop();
      for (const consumer of [...consumers.values()].reverse()) await consumer.stop();
      consumers.clear();
      if (nc !== undefined && !nc.isClosed()) await nc.drain();
    },
  };
}

const STREAM_NOT_FOUND = 10059;

async function createStreamIfMissing(nc: NatsConnection, spec: StreamSpec): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(spec.name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND)) throw err;
    await ensureStream(nc, spec);
  }
}
