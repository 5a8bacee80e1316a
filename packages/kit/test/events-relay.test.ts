import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { createDb } from "../src/db.js";
import { appendEvent } from "../src/events/outbox.js";
import { startRelay } from "../src/events/relay.js";
import {
  installTracing,
  startEventsEnv,
  TEST_STREAM,
  waitFor,
  type EventsEnv,
  type TestTables,
} from "./events-fixtures.js";

const exporter = installTracing();
let env: EventsEnv;

beforeAll(async () => {
  env = await startEventsEnv("relay");
});
afterAll(async () => {
  await env.close();
});
beforeEach(async () => {
  await env.db.deleteFrom("kit_outbox").execute();
  const jsm = await jetstreamManager(env.nc);
  await jsm.streams.purge(TEST_STREAM);
  exporter.reset();
});

function aUserRegistered(email = "ada@example.com") {
  return create(UserRegisteredSchema, { userId: "u-1", email, firstName: "Ada", lastName: "Lovelace" });
}

async function streamMessages() {
  const jsm = await jetstreamManager(env.nc);
  const info = await jsm.streams.info(TEST_STREAM);
  const messages = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(TEST_STREAM, { seq });
    if (m !== null) messages.push(m);
  }
  return messages;
}

/** Commits one UserRegistered event in a transaction of its own; resolves with its id. */
function commitEvent(email: string): Promise<string> {
  return env.db
    .transaction()
    .execute((trx) =>
      appendEvent(trx, UserRegisteredSchema, aUserRegistered(email), { source: "zero.test" }),
    );
}

/** Commits `count` events one after another (so in this order); resolves with their ids. */
async function commitEvents(count: number, prefix: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await commitEvent(`${prefix}${i}@example.com`));
  return ids;
}

async function unpublished(): Promise<number> {
  const row = await env.db
    .selectFrom("kit_outbox")
    .select((eb) => eb.fn.countAll<string>().as("n"))
    .where("published_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe("appendEvent + relay", () => {
  it("publishes a committed event with Nats-Msg-Id, CloudEvents headers and the append-time trace", async () => {
    const relay = startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, pollIntervalMs: 50 });
    try {
      const tracer = trace.getTracer("test");
      const { eventId, appendSpan } = await tracer.startActiveSpan("register", async (span) => {
        const id = await commitEvent("ada@example.com");
        span.end();
        return { eventId: id, appendSpan: span.spanContext() };
      });
      relay.wake();

      const [stored] = await waitFor("the event on the stream", async () => {
        const all = await streamMessages();
        return all.length === 1 ? all : undefined;
      });
      expect(stored?.subject).toBe("zero.auth.v1.UserRegistered");
      const h = stored!.header;
      expect(h.get("Nats-Msg-Id")).toBe(eventId);
      expect(h.get("ce-id")).toBe(eventId);
      expect(h.get("ce-specversion")).toBe("1.0");
      expect(h.get("ce-source")).toBe("zero.test");
      expect(h.get("ce-type")).toBe("zero.auth.v1.UserRegistered");
      expect(new Date(h.get("ce-time")).getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(h.get("content-type")).toBe("application/protobuf");

      // traceparent = the relay's publish span, a child of the span active at append time.
      const [, traceId, spanId] = h.get("traceparent").split("-");
      expect(traceId).toBe(appendSpan.traceId);
      const publishSpan = exporter
        .getFinishedSpans()
        .find((s) => s.name === "send zero.auth.v1.UserRegistered");
      expect(publishSpan?.spanContext().spanId).toBe(spanId);
      expect(publishSpan?.parentSpanContext?.spanId).toBe(appendSpan.spanId);

      // The relay marks the row after JetStream's ack: it may still be committing the mark.
      await waitFor("the row marked published", async () => ((await unpublished()) === 0 ? true : undefined));
    } finally {
      await relay.stop();
    }
  });

  it("publishes nothing for a rolled-back transaction", async () => {
    const relay = startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, pollIntervalMs: 50 });
    try {
      await expect(
        env.db.transaction().execute(async (trx) => {
          await appendEvent(trx, UserRegisteredSchema, aUserRegistered("rolled@back.example"), {
            source: "zero.test",
          });
          throw new Error("business rule failed");
        }),
      ).rejects.toThrow("business rule failed");
      // A committed event after it: once it is on the stream, the relay has passed the rollback.
      const committed = await commitEvent("kept@example.com");
      relay.wake();
      await waitFor("the committed event", async () => (await unpublished()) === 0);
      const messages = await streamMessages();
      expect(messages.map((m) => m.header.get("ce-id"))).toEqual([committed]);
      expect(await env.db.selectFrom("kit_outbox").select("id").execute()).toEqual([{ id: committed }]);
    } finally {
      await relay.stop();
    }
  });

  it("keeps commit order on the stream with one relay, while events keep being committed", async () => {
    const relay = startRelay({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      batchSize: 5,
      pollIntervalMs: 10,
    });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        ids.push(await commitEvent(`o${i}@example.com`));
        relay.wake();
      }
      await waitFor("all events published", async () => (await unpublished()) === 0);
      // A consumer may rely on it (a payment's Created before its Succeeded): each replica
      // publishes its events in the order they committed.
      expect((await streamMessages()).map((m) => m.header.get("ce-id"))).toEqual(ids);
    } finally {
      await relay.stop();
    }
  });

  it("drains a backlog of many batches (pipelined) in commit order, each event published once", async () => {
    const ids = await commitEvents(53, "b");
    // 53 rows in batches of 4: the next batch is locked while one is published and the previous
    // one commits, so three transactions overlap.
    const relay = startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, batchSize: 4 });
    try {
      await waitFor("the backlog published", async () => (await unpublished()) === 0);
      expect((await streamMessages()).map((m) => m.header.get("ce-id"))).toEqual(ids);
      const sends = exporter.getFinishedSpans().filter((s: ReadableSpan) => s.name.startsWith("send "));
      expect(sends.map((s) => s.attributes["messaging.message.id"])).toEqual(ids);
    } finally {
      await relay.stop();
    }
    // Nothing left locked or open: a plain update of every row goes through at once.
    await env.db.transaction().execute(async (trx) => {
      await sql`set local lock_timeout = '1s'`.execute(trx);
      await trx.updateTable("kit_outbox").set({ headers: "{}" }).execute();
    });
  });

  it("leaves no transaction open when NATS goes away mid-drain, and publishes the rest once it is back", async () => {
    const ids = await commitEvents(400, "n");
    const relay = startRelay({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      batchSize: 5,
      publishTimeoutMs: 500,
      pollIntervalMs: 20,
    });
    try {
      await waitFor("a few batches published", async () => (await unpublished()) < 380);
      await env.nats.stop();
      // Backing off: every transaction of the interrupted drain was committed or rolled back.
      await waitFor("no transaction left open by the relay", async () => {
        const { rows } = await sql<{ n: string }>`
          select count(*) as n from pg_stat_activity
          where datname = current_database() and state like 'idle in transaction%'`.execute(env.db);
        return Number(rows[0]?.n) === 0;
      });
      expect(await unpublished()).toBeGreaterThan(0);
      await env.nats.start();
      await waitFor(
        "everything published after NATS is back",
        async () => (await unpublished()) === 0,
        30_000,
      );
      // Nats-Msg-Id drops what a timed-out publish had stored anyway: each event once, in order.
      expect((await streamMessages()).map((m) => m.header.get("ce-id"))).toEqual(ids);
    } finally {
      await relay.stop();
      await env.nats.start();
    }
  });

  it("recovers when Postgres kills its transactions mid-drain: nothing stays locked, each event once", async () => {
    const ids = await commitEvents(400, "k");
    const relay = startRelay({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      batchSize: 5,
      pollIntervalMs: 20,
    });
    try {
      await waitFor("a few batches published", async () => (await unpublished()) < 390);
      // An administrator (or a failover) ends the relay's sessions: its next statements fail.
      for (let round = 0; round < 5; round++) {
        await sql`select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()
            and state like 'idle in transaction%'`.execute(env.db);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor("everything published", async () => (await unpublished()) === 0, 30_000);
      expect((await streamMessages()).map((m) => m.header.get("ce-id"))).toEqual(ids);
    } finally {
      await relay.stop();
    }
  });

  it("publishes each event once with two relays on the same database", async () => {
    const otherDb = createDb<TestTables>(env.dbUrl);
    const relays = [
      startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, batchSize: 7, pollIntervalMs: 10 }),
      startRelay({ db: otherDb, nc: env.nc, logger: env.log.logger, batchSize: 7, pollIntervalMs: 10 }),
    ];
    try {
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        ids.push(await commitEvent(`u${i}@example.com`));
        if (i % 10 === 0) relays.forEach((r) => r.wake());
      }
      relays.forEach((r) => r.wake());
      await waitFor("all events published", async () => (await unpublished()) === 0);

      const messages = await streamMessages();
      expect(messages).toHaveLength(60);
      expect(new Set(messages.map((m) => m.header.get("ce-id")))).toEqual(new Set(ids));
      // Stream dedup would hide a double publish: count the publish attempts (one span each).
      const sends = exporter.getFinishedSpans().filter((s: ReadableSpan) => s.name.startsWith("send "));
      expect(sends).toHaveLength(60);
      expect(new Set(sends.map((s) => s.attributes["messaging.message.id"]))).toEqual(new Set(ids));
    } finally {
      await Promise.all(relays.map((r) => r.stop()));
      await otherDb.destroy();
    }
  });
});
