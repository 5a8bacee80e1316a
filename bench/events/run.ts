import { connect } from "@nats-io/transport-node";
import { createDb, migrateToLatest } from "@zero/kit/db";
import { outboxMigration, type OutboxTables } from "@zero/kit/events/outbox";
import { createLogger } from "@zero/kit/log";
import { startNats } from "@zero/testkit/nats";
import { createTestDatabase } from "@zero/testkit/postgres";
import { measureCommitLatency } from "./commit-latency.js";
import { measureJetStreamCeiling } from "./jetstream-ceiling.js";
import { measureOutboxDrain } from "./outbox-drain.js";
import { measurePaymentCreate } from "./payment-create.js";
import { round } from "./stats.js";

// bench/events — one run, every figure of issue 5's benchmark, all on loopback with private
// infrastructure (a fresh database on the local Postgres, a private nats-server), bounded in time:
//   pnpm --filter @zero/bench events          (add `-- --quick` for a short smoke run)
// Prints a table and a JSON line; RESULTS.md records a run.

const quick = process.argv.includes("--quick");
const logger = createLogger("bench-events", { level: "warn" });
const sizes = quick
  ? { messages: 2_000, backlog: 2_000, latencyRate: 100, latencySeconds: 3, createSeconds: 2 }
  : { messages: 20_000, backlog: 20_000, latencyRate: 200, latencySeconds: 10, createSeconds: 8 };
const WINDOW = 200; // publishes in flight: the relay's batch size

const nats = await startNats();
const eventsDb = await createTestDatabase("bench_events");
const paymentsDb = await createTestDatabase("bench_payments");
const db = createDb<OutboxTables>(eventsDb.url, { logger, max: 10 });
const nc = await connect({ servers: nats.url });
try {
  await migrateToLatest(db, { "0000-kit-outbox": outboxMigration }, logger);

  const ceiling = await measureJetStreamCeiling(nats.url, { messages: sizes.messages, window: WINDOW });
  console.log(
    `raw JetStream: async publish ${ceiling.asyncPublishPerSec}/s (${WINDOW} in flight), sync publish ${ceiling.syncPublishPerSec}/s, consume+ack ${ceiling.consumePerSec}/s`,
  );

  const drain = await measureOutboxDrain({ db, nc, logger, events: sizes.backlog });
  const drainRatio = round(drain.drainPerSec / ceiling.asyncPublishPerSec, 2);
  console.log(
    `outbox relay: drained ${sizes.backlog} events at ${drain.drainPerSec}/s = ${drainRatio}x raw async publish (target >= 0.5)`,
  );

  const drain2 = await measureOutboxDrain({ db, nc, logger, events: sizes.backlog, relays: 2 });
  const drain2Ratio = round(drain2.drainPerSec / ceiling.asyncPublishPerSec, 2);
  console.log(`  two relays (as two replicas): ${drain2.drainPerSec}/s = ${drain2Ratio}x raw async publish`);

  const latency = await measureCommitLatency({
    db,
    nc,
    logger,
    perSecond: sizes.latencyRate,
    seconds: sizes.latencySeconds,
  });
  console.log(
    `commit -> consumer: p50 ${latency.p50} ms, p99 ${latency.p99} ms, max ${latency.max} ms (${latency.events} events at ${latency.achievedPerSec}/s)`,
  );

  const create = await measurePaymentCreate({
    databaseUrl: paymentsDb.url,
    natsUrl: nats.url,
    logger,
    seconds: sizes.createSeconds,
    concurrency: 32,
  });
  console.log(
    `CreatePayment: ${create.withIdempotencyAndOutboxPerSec}/s with idempotency + outbox vs ${create.plainInsertPerSec}/s plain insert = ${create.ratio}x (target >= 0.5)`,
  );

  console.log(
    JSON.stringify({
      quick,
      ceiling,
      drain: { ...drain, ratio: drainRatio },
      drainTwoRelays: { ...drain2, ratio: drain2Ratio },
      latency,
      create,
    }),
  );
} finally {
  await nc.close();
  await db.destroy();
  await Promise.all([eventsDb.drop(), paymentsDb.drop(), nats.stop()]);
}
