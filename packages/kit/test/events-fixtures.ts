import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { createTestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { sql, type Kysely, type Migration } from "kysely";
import { pino, type Logger } from "pino";
import { createDb, migrateToLatest } from "../src/db.js";
import { connectNats } from "../src/events/nats.js";
import { outboxMigration, type OutboxTables } from "../src/events/outbox.js";
import { ensureStream } from "../src/events/streams.js";

/** Registers W3C propagation, async context and an in-memory exporter globally for this test file. */
export function installTracing(): InMemorySpanExporter {
  trace.disable();
  context.disable();
  propagation.disable();
  const exporter = new InMemorySpanExporter();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
  return exporter;
}

export interface CapturedLogger {
  logger: Logger;
  lines: { level: number; msg: string; [key: string]: unknown }[];
}

/** A real pino logger whose JSON lines are kept for assertions. */
export function captureLogger(): CapturedLogger {
  const lines: CapturedLogger["lines"] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line !== "") lines.push(JSON.parse(line) as CapturedLogger["lines"][number]);
      }
      callback();
    },
  });
  return { logger: pino({ level: "debug" }, destination), lines };
}

/** Polls `probe` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export interface TestTables extends OutboxTables {
  test_effects: { event_id: string; note: string };
}

export const testMigrations: Record<string, Migration> = {
  "0000_kit_outbox": outboxMigration,
  "0001_test_effects": {
    async up(db: Kysely<unknown>) {
      await sql`create table test_effects (event_id uuid not null, note text not null)`.execute(db);
    },
  },
};

export const TEST_STREAM = "ZERO_TEST";

export interface EventsEnv {
  db: Kysely<TestTables>;
  dbUrl: string;
  nats: TestNats;
  nc: NatsConnection;
  log: CapturedLogger;
  close(): Promise<void>;
}

/** A migrated database, a private NATS with the test stream, a connection and a capturing logger. */
export async function startEventsEnv(prefix: string): Promise<EventsEnv> {
  const [database, nats] = await Promise.all([createTestDatabase(prefix), startNats()]);
  const log = captureLogger();
  const db = createDb<TestTables>(database.url, { logger: log.logger });
  await migrateToLatest(db, testMigrations);
  const nc = await connectNats(nats.url, log.logger);
  await ensureStream(nc, { name: TEST_STREAM, subjects: ["zero.auth.v1.>", "zero.testing.v1.>"] });
  return {
    db,
    dbUrl: database.url,
    nats,
    nc,
    log,
    async close() {
      await nc.close();
      await db.destroy();
      await Promise.all([database.drop(), nats.stop()]);
    },
  };
}
