import { JetStreamApiError } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { startConsumer, type EventConsumer, type EventHandler } from "@zero/kit/events/consumer";
import { connectNats } from "@zero/kit/events/nats";
import type { Logger } from "@zero/kit/log";
import { UserDeletedSchema, UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import type { Kysely } from "kysely";
import { setTimeout as sleep } from "node:timers/promises";
import { deleteAllAddresses } from "./address-store.js";
import type { DB } from "./db/schema.js";
import { isErased, markErased } from "./erased-users.js";
import { namesFromRegistration } from "./profile.js";
import { createProfileFromRegistration, deleteProfile } from "./profile-store.js";
import { isUuid } from "./user-access.js";
import { lockUser } from "./user-lock.js";

// What users does with auth's events (stream ZERO_AUTH). Each consumer applies an event once
// (the kit's inbox); both handlers are idempotent anyway, so a replay under a new event id is
// harmless too. The two consumers run independently, so a UserDeleted may be handled before the
// account's UserRegistered: erasure leaves a tombstone (erased-users.ts) that the profile
// consumer honours.

export const AUTH_STREAM = "ZERO_AUTH";
export const PROFILES_CONSUMER = "users-profiles";
export const ERASURE_CONSUMER = "users-erasure";

/** users-profiles: a registration creates the account's profile. */
export const userRegisteredHandler: EventHandler<DB, typeof UserRegisteredSchema> = {
  schema: UserRegisteredSchema,
  async handle(event, { trx }) {
    const userId = eventUserId(event.userId, "UserRegistered");
    await lockUser(trx, userId);
    // Deleted before its registration reached us: creating the profile now would undo the erasure.
    if (await isErased(trx, userId)) return;
    await createProfileFromRegistration(trx, userId, namesFromRegistration(event.firstName, event.lastName));
  },
};

/** users-erasure: a deleted account loses its profile and addresses (GDPR art. 17). */
export const userDeletedHandler: EventHandler<DB, typeof UserDeletedSchema> = {
  schema: UserDeletedSchema,
  async handle(event, { trx }) {
    const userId = eventUserId(event.userId, "UserDeleted");
    // Under the user lock, so no write that started before the erasure commits after it.
    await lockUser(trx, userId);
    await markErased(trx, userId);
    await deleteAllAddresses(trx, userId);
    await deleteProfile(trx, userId);
  },
};

/** A malformed id never becomes valid: throwing sends the event to the dead-letter stream after retries. */
function eventUserId(value: string, type: string): string {
  if (!isUuid(value))
    throw new Error(`${type} carries no user id (UUID): ${JSON.stringify(value.slice(0, 64))}`);
  return value.toLowerCase();
}

export interface AuthEventConsumers {
  /** Readiness: rejects until NATS is connected and both consumers run. */
  check(): Promise<void>;
  stop(): Promise<void>;
}

const STREAM_NOT_FOUND = 10059;

/**
 * Connects to NATS and starts both consumers in the background, retrying while NATS is down or
 * auth has not yet created its stream (services start in any order). The service serves meanwhile.
 */
export function startAuthEventConsumers(opts: {
  db: Kysely<DB>;
  natsUrl: string;
  logger: Logger;
  name: string;
}): AuthEventConsumers {
  const { db, logger } = opts;
  const aborted = new AbortController();
  let nc: NatsConnection | undefined;
  const consumers: EventConsumer[] = [];

  const starting = (async () => {
    nc = await connectNats(opts.natsUrl, logger, { signal: aborted.signal, name: opts.name });
    const connection = nc;
    const start = async (
      durable: string,
      handler: EventHandler<DB, typeof UserRegisteredSchema> | EventHandler<DB, typeof UserDeletedSchema>,
    ) => {
      for (let attempt = 1; ; attempt++) {
        aborted.signal.throwIfAborted();
        try {
          return await startConsumer({
            db,
            nc: connection,
            logger,
            stream: AUTH_STREAM,
            durable,
            handlers: [handler],
          });
        } catch (err) {
          if (attempt === 1) {
            const missing = err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND;
            logger.warn(
              { err, durable },
              missing
                ? `stream ${AUTH_STREAM} does not exist yet (auth not started?); retrying`
                : "cannot start the event consumer yet; retrying",
            );
          }
          await sleep(Math.min(250 * 2 ** attempt, 5000), undefined, { signal: aborted.signal });
        }
      }
    };
    for (const [durable, handler] of [
      [PROFILES_CONSUMER, userRegisteredHandler],
      [ERASURE_CONSUMER, userDeletedHandler],
    ] as const) {
      const consumer = await start(durable, handler);
      if (aborted.signal.aborted) {
        await consumer.stop();
        return;
      }
      consumers.push(consumer);
      logger.info({ durable, stream: AUTH_STREAM }, "event consumer started");
    }
  })();
  starting.catch((err: unknown) => {
    if (!aborted.signal.aborted) logger.error({ err }, "event consumers could not start");
  });

  return {
    async check() {
      if (nc === undefined || consumers.length < 2)
        throw new Error("event consumers are starting (NATS or ZERO_AUTH unavailable?)");
      if (nc.isClosed()) throw new Error("NATS connection closed");
      await nc.flush();
    },
    async stop() {
      aborted.abort();
      await starting.catch(() => undefined);
      for (const consumer of consumers.splice(0).reverse()) await consumer.stop();
      if (nc !== undefined && !nc.isClosed()) await nc.drain();
    },
  };
}
