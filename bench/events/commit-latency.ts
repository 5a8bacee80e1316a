import { jetstreamManager } from "@nats-io/jetstream";
import { appendEvent, type OutboxTables } from "@zero/kit/events/outbox";
import { startConsumer } from "@zero/kit/events/consumer";
import { startRelay } from "@zero/kit/events/relay";
import type { Logger } from "@zero/kit/log";
import { PaymentCreatedSchema } from "@zero/proto/zero/payments/v1/events_pb";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Kysely } from "kysely";
import { anEvent, BENCH_STREAM } from "./outbox-drain.js";
import { percentile, round, until } from "./stats.js";

// Commit → consumer latency at a steady rate, through the whole event path: a transaction appends
// the event and commits, the service wakes the relay (as payment-service.ts does after every
// commit), the relay publishes, the kit's durable consumer runs its handler in a transaction with
// the inbox row. Measured from just after COMMIT to the handler's start.

export async function measureCommitLatency(opts: {
  db: Kysely<OutboxTables>;
  nc: NatsConnection;
  logger: Logger;
  perSecond: number;
  seconds: number;
}): Promise<{
  p50: number;
  p99: number;
  max: number;
  events: number;
  achievedPerSec: number;
  /** The part until the message is on NATS (a plain subscription sees it): relay wake-up + publish. */
  publishedP50: number;
  publishedP99: number;
}> {
  // The durable consumer starts at the stream's beginning: clear what earlier scenarios left.
  await (await jetstreamManager(opts.nc)).streams.purge(BENCH_STREAM.name);
  const committedAt = new Map<string, number>();
  const latencies: number[] = [];
  const published: number[] = [];
  // A core NATS subscription on the same subjects sees each message as the stream stores it.
  const wire = opts.nc.subscribe("zero.payments.v1.>", {
    callback: (_err, msg) => {
      const at = committedAt.get(msg.headers?.get("ce-id") ?? "");
      if (at !== undefined) published.push(performance.now() - at);
    },
  });
  const relay = startRelay({ db: opts.db, nc: opts.nc, logger: opts.logger });
  const consumer = await startConsumer({
    db: opts.db,
    nc: opts.nc,
    logger: opts.logger,
    stream: BENCH_STREAM.name,
    durable: "bench-latency",
    concurrency: 8,
    handlers: [
      {
        schema: PaymentCreatedSchema,
        handle(_event, { eventId }) {
          const at = committedAt.get(eventId);
          if (at !== undefined) latencies.push(performance.now() - at);
          return Promise.resolve();
        },
      },
    ],
  });
  try {
    const total = opts.perSecond * opts.seconds;
    const interval = 1000 / opts.perSecond;
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      // A steady schedule: each commit starts at its slot, whether or not earlier ones finished.
      const wait = started + i * interval - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      inFlight.push(
        (async () => {
          let id = "";
          await opts.db.transaction().execute(async (trx) => {
            id = await appendEvent(trx, PaymentCreatedSchema, anEvent(i), { source: "zero.bench" });
          });
          committedAt.set(id, performance.now());
          relay.wake();
        })(),
      );
    }
    await Promise.all(inFlight);
    const achievedPerSec = Math.round((total * 1000) / (performance.now() - started));
    await until(() => latencies.length >= total, 60_000, "consumer catching up");
    return {
      p50: round(percentile(latencies, 0.5)),
      p99: round(percentile(latencies, 0.99)),
      max: round(Math.max(...latencies)),
      events: latencies.length,
      achievedPerSec,
      publishedP50: round(percentile(published, 0.5)),
      publishedP99: round(percentile(published, 0.99)),
    };
  } finally {
    wire.unsubscribe();
    await consumer.stop();
    await relay.stop();
  }
}
