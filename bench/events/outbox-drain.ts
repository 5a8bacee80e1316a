import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { appendEvent, type OutboxTables } from "@zero/kit/events/outbox";
import { startRelay } from "@zero/kit/events/relay";
import { ensureStream } from "@zero/kit/events/streams";
import type { Logger } from "@zero/kit/log";
import { PaymentCreatedSchema } from "@zero/proto/zero/payments/v1/events_pb";
import type { NatsConnection } from "@nats-io/transport-node";
import { sql, type Kysely } from "kysely";
import { EVENT_STREAM } from "@zero/payments/payment-events";
import { rate, until } from "./stats.js";

// The outbox relay's drain rate: a backlog of N committed events (what piles up during a NATS
// outage) published by the kit's relay, from the first row to the last acked and marked.

// The payments service's own stream: the last scenario runs the service against the same server.
export const BENCH_STREAM = EVENT_STREAM;

export const anEvent = (i: number) =>
  create(PaymentCreatedSchema, {
    paymentId: `0193a1b2-0000-7000-8000-${String(i).padStart(12, "0")}`,
    reference: "pay_benchbenchbenchbenc",
    userId: "0193a1b2-0000-7000-8000-000000000001",
    amount: 1999n,
    currency: "EUR",
    description: "Order of two books",
    receiptEmail: "bench@example.com",
    createTime: timestampNow(),
  });

export async function measureOutboxDrain(opts: {
  db: Kysely<OutboxTables>;
  nc: NatsConnection;
  logger: Logger;
  events: number;
  /** Relays sharing the backlog, as replicas of a service would (FOR UPDATE SKIP LOCKED). */
  relays?: number;
}): Promise<{ drainPerSec: number; ms: number }> {
  await ensureStream(opts.nc, BENCH_STREAM);
  const unpublished = async () =>
    Number(
      (
        await sql<{ n: string }>`select count(*) as n from kit_outbox where published_at is null`.execute(
          opts.db,
        )
      ).rows[0]!.n,
    );
  const drain = async (events: number): Promise<number> => {
    // The backlog, committed in chunks (like many services' transactions would).
    for (let i = 0; i < events; i += 500) {
      await opts.db.transaction().execute(async (trx) => {
        for (let j = i; j < Math.min(i + 500, events); j++) {
          await appendEvent(trx, PaymentCreatedSchema, anEvent(j), { source: "zero.bench" });
        }
      });
    }
    const started = performance.now();
    const relays = Array.from({ length: opts.relays ?? 1 }, () =>
      startRelay({ db: opts.db, nc: opts.nc, logger: opts.logger }),
    );
    try {
      await until(async () => (await unpublished()) === 0, 120_000, "outbox drain");
    } finally {
      await Promise.all(relays.map((r) => r.stop()));
    }
    return performance.now() - started;
  };
  // Untimed first: JIT, the pool and the JetStream client warm up (the ceiling was warmed too).
  await drain(Math.min(2_000, opts.events));
  const ms = await drain(opts.events);
  return { drainPerSec: rate(opts.events, ms), ms: Math.round(ms) };
}
