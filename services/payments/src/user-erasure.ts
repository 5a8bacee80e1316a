import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@zero/kit/log";
import { startConsumer, type EventConsumer } from "@zero/kit/events/consumer";
import { connectNats } from "@zero/kit/events/nats";
import type { NatsConnection } from "@nats-io/transport-node";
import { UserDeletedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { erasePersonalData } from "./personal-data.js";

export const ERASURE_CONSUMER = "payments-erasure";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface UserErasure {
  /** Rejects until the consumer runs (NATS reachable, auth's stream present). */
  check(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Consumes `zero.auth.v1.UserDeleted` (durable `payments-erasure`, idempotent through the kit's
 * inbox) and anonymises the user's payments. Started in the background: the service serves while
 * NATS is down or auth has not created its stream yet, and the consumer catches up afterwards.
 */
export function startUserErasure(opts: { db: Kysely<DB>; natsUrl: string; logger: Logger }): UserErasure {
  const { logger } = opts;
  const aborted = new AbortController();
  let nc: NatsConnection | undefined;
  let consumer: EventConsumer | undefined;

  const starting = (async () => {
    nc = await connectNats(opts.natsUrl, logger, { signal: aborted.signal, name: ERASURE_CONSUMER });
    for (let attempt = 1; ; attempt++) {
      try {
        consumer = await startConsumer({
          db: opts.db,
          nc,
          logger,
          stream: "ZERO_AUTH",
          durable: ERASURE_CONSUMER,
          handlers: [
            {
              schema: UserDeletedSchema,
              async handle(event, { trx }) {
                const userId = event.userId.toLowerCase();
                if (!UUID.test(userId)) {
                  // Nothing of ours can belong to it (owners are UUIDs); retrying would not help.
                  logger.warn({ user_id: event.userId }, "UserDeleted without a UUID user id: ignored");
                  return;
                }
                await erasePersonalData(trx, userId);
                logger.info({ user_id: event.userId }, "personal data erased from payments");
              },
            },
          ],
        });
        return;
      } catch (err) {
        if (attempt === 1) logger.warn({ err }, "cannot consume ZERO_AUTH yet (stream missing?); retrying");
        await sleep(Math.min(250 * 2 ** attempt, 5_000));
        aborted.signal.throwIfAborted();
      }
    }
  })();
  starting.catch((err: unknown) => {
    if (!aborted.signal.aborted) logger.error({ err }, "user erasure consumer could not start");
  });

  return {
    check() {
      return consumer === undefined
        ? Promise.reject(new Error("user erasure consumer is starting"))
        : Promise.resolve();
    },
    async stop() {
      aborted.abort();
      await starting.catch(() => undefined);
      await consumer?.stop();
      if (nc !== undefined && !nc.isClosed()) await nc.drain();
    },
  };
}
