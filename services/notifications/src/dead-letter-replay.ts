import { fromBinary } from "@bufbuild/protobuf";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { DomainError } from "@zero/kit/errors";
import type { EventHandler } from "@zero/kit/events/consumer";
import type { Kysely } from "kysely";
import type { DB, DeadLetterRow } from "./db/schema.js";
import { findDeadLetter, recordReplay } from "./dead-letter-store.js";

// Replaying a dead letter runs the consumer's own handler on the stored event, here and now,
// under the same once-only rule as the consumer: the kit inbox row (consumer, event id) and the
// handler's writes commit together, and an event the inbox already holds is not handled again.
// Nothing is republished to NATS, so other services' consumers of the same stream never see it.

export interface DeadLetterReplayer {
  replay(id: string): Promise<{ deadLetter: DeadLetterRow; resolved: boolean; error: string }>;
}

export function createDeadLetterReplayer(deps: {
  db: Kysely<DB>;
  /** The handlers of each consumer, by durable name. */
  consumers: Record<string, readonly EventHandler<DB>[]>;
  /** Called after a replay queued mail (wakes the delivery worker). */
  onResolved: () => void;
}): DeadLetterReplayer {
  const { db } = deps;

  async function handleOnce(row: DeadLetterRow): Promise<void> {
    const handler = deps.consumers[row.consumer]?.find((h) => h.schema.typeName === row.subject);
    if (handler === undefined) throw new Error(`no handler of ${row.consumer} for ${row.subject}`);
    if (row.event_id === null)
      throw new Error("the dead letter has no event id (ce-id): it cannot be applied once");
    const eventId = row.event_id;
    const message = fromBinary(handler.schema, row.payload);
    const headers = natsHeaders();
    for (const [key, value] of Object.entries(row.headers)) headers.set(key, value);
    await db.transaction().execute(async (trx) => {
      const fresh = await trx
        .insertInto("kit_inbox")
        .values({ consumer: row.consumer, event_id: eventId })
        .onConflict((oc) => oc.columns(["consumer", "event_id"]).doNothing())
        .returning("event_id")
        .executeTakeFirst();
      if (fresh === undefined) return; // handled meanwhile (e.g. redelivered after a consumer reset)
      await handler.handle(message, {
        eventId,
        trx,
        headers,
        subject: row.subject,
        deliveryCount: row.deliveries + row.replays + 1,
      });
    });
  }

  return {
    async replay(id) {
      const row = await findDeadLetter(db, id);
      if (row === undefined) {
        throw new DomainError(
          "not_found",
          `dead letter ${id} does not exist: list them with ListDeadLetters`,
        );
      }
      if (row.resolved_at !== null) return { deadLetter: row, resolved: true, error: "" };
      try {
        await handleOnce(row);
      } catch (error) {
        const message = (error instanceof Error ? error.message : String(error)).slice(0, 1000);
        return {
          deadLetter: await recordReplay(db, id, { resolved: false, error: message }),
          resolved: false,
          error: message,
        };
      }
      const resolved = await recordReplay(db, id, { resolved: true });
      deps.onResolved();
      return { deadLetter: resolved, resolved: true, error: "" };
    },
  };
}
