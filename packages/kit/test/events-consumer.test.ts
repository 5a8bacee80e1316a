import { create, toBinary } from "@bufbuild/protobuf";
import { jetstream, jetstreamManager, type StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { trace } from "@opentelemetry/api";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { EchoRequestSchema } from "@zero/proto/zero/testing/v1/echo_pb";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startConsumer } from "../src/events/consumer.js";
import { appendEvent } from "../src/events/outbox.js";
import { startRelay, type Relay } from "../src/events/relay.js";
import { DEAD_LETTER_STREAM } from "../src/events/streams.js";
import { installTracing, startEventsEnv, TEST_STREAM, waitFor, type EventsEnv } from "./events-fixtures.js";

const exporter = installTracing();
let env: EventsEnv;
let relay: Relay;

beforeAll(async () => {
  env = await startEventsEnv("consumer");
  relay = startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, pollIntervalMs: 20 });
});
afterAll(async () => {
  await relay.stop();
  await env.close();
});
beforeEach(async () => {
  const jsm = await jetstreamManager(env.nc);
  await jsm.streams.purge(TEST_STREAM);
  exporter.reset();
});

/** Publishes an echo event straight to JetStream, as another producer would. */
async function publishEcho(message: string, eventId: string, msgId = eventId): Promise<void> {
  const h = natsHeaders();
  h.set("ce-id", eventId);
  h.set("ce-type", EchoRequestSchema.typeName);
  await jetstream(env.nc).publish(
    EchoRequestSchema.typeName,
    toBinary(EchoRequestSchema, create(EchoRequestSchema, { message })),
    {
      msgID: msgId,
      headers: h,
    },
  );
}

async function settled(durable: string): Promise<true | undefined> {
  const info = await (await jetstreamManager(env.nc)).consumers.info(TEST_STREAM, durable);
  return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
}

async function deadLetters(durable: string): Promise<StoredMsg[]> {
  const jsm = await jetstreamManager(env.nc);
  const info = await jsm.streams.info(DEAD_LETTER_STREAM);
  const found: StoredMsg[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(DEAD_LETTER_STREAM, { seq });
    if (m?.subject.startsWith(`dlq.${durable}.`)) found.push(m);
  }
  return found;
}

async function effects(): Promise<{ event_id: string; note: string }[]> {
  return env.db.selectFrom("test_effects").selectAll().execute();
}

describe("startConsumer", () => {
  it("continues the producer's trace and hands the handler the event in a transaction", async () => {
    const seen: { eventId: string; email: string; traceId?: string }[] = [];
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-trace",
      handlers: [
        {
          schema: UserRegisteredSchema,
          async handle(message, ctx) {
            await ctx.trx
              .insertInto("test_effects")
              .values({ event_id: ctx.eventId, note: message.email })
              .execute();
            seen.push({
              eventId: ctx.eventId,
              email: message.email,
              traceId: trace.getActiveSpan()?.spanContext().traceId,
            });
          },
        },
      ],
    });
    try {
      const { eventId, traceId } = await trace.getTracer("test").startActiveSpan("register", async (span) => {
        const id = await env.db.transaction().execute((trx) =>
          appendEvent(
            trx,
            UserRegisteredSchema,
            create(UserRegisteredSchema, { email: "grace@example.com" }),
            {
              source: "zero.test",
            },
          ),
        );
        span.end();
        return { eventId: id, traceId: span.spanContext().traceId };
      });
      relay.wake();

      await waitFor("the handler", () => seen.length === 1);
      expect(seen[0]).toEqual({ eventId, email: "grace@example.com", traceId });
      // The handler runs inside the transaction, so `seen` fills before the commit; wait for the
      // committed row rather than reading it at once (CI once read it between the two).
      await waitFor("the committed effect", async () =>
        (await effects()).some((e) => e.event_id === eventId),
      );
      expect(await effects()).toContainEqual({ event_id: eventId, note: "grace@example.com" });
      const consumerSpan = await waitFor("the consumer span", () =>
        exporter.getFinishedSpans().find((s) => s.name === "process zero.auth.v1.UserRegistered"),
      );
      expect(consumerSpan.spanContext().traceId).toBe(traceId);
      const sendSpan = exporter.getFinishedSpans().find((s) => s.name === "send zero.auth.v1.UserRegistered");
      expect(consumerSpan.parentSpanContext?.spanId).toBe(sendSpan?.spanContext().spanId);
    } finally {
      await consumer.stop();
    }
  });

  it("applies an event delivered twice (same ce-id, different Nats-Msg-Id) once", async () => {
    let calls = 0;
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-idempotent",
      handlers: [
        {
          schema: EchoRequestSchema,
          async handle(message, ctx) {
            calls++;
            await ctx.trx
              .insertInto("test_effects")
              .values({ event_id: ctx.eventId, note: message.message })
              .execute();
          },
        },
      ],
    });
    try {
      const eventId = uuidv7();
      await publishEcho("twice", eventId, `${eventId}-a`);
      await publishEcho("twice", eventId, `${eventId}-b`);
      await waitFor("both deliveries acked", () => settled("test-idempotent"));
      expect(calls).toBe(1);
      expect((await effects()).filter((e) => e.event_id === eventId)).toHaveLength(1);
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters a failing event after maxDeliver attempts and keeps consuming", async () => {
    const attempts = new Map<string, number>();
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-dlq",
      maxDeliver: 3,
      backoffMs: 20,
      handlers: [
        {
          schema: EchoRequestSchema,
          async handle(message, ctx) {
            attempts.set(message.message, (attempts.get(message.message) ?? 0) + 1);
            await ctx.trx
              .insertInto("test_effects")
              .values({ event_id: ctx.eventId, note: message.message })
              .execute();
            if (message.message === "boom") throw new Error("payment provider said no\r\nsecond line");
          },
        },
      ],
    });
    try {
      const failing = uuidv7();
      await publishEcho("boom", failing);
      const later = uuidv7();
      await publishEcho("after", later);

      const [dead] = await waitFor("the dead letter", async () => {
        const found = await deadLetters("test-dlq");
        return found.length > 0 ? found : undefined;
      });
      expect(dead?.subject).toBe("dlq.test-dlq.zero.testing.v1.EchoRequest");
      expect(dead?.header.get("zero-dlq-error")).toBe("payment provider said no second line");
      expect(dead?.header.get("zero-dlq-consumer")).toBe("test-dlq");
      expect(dead?.header.get("zero-dlq-deliveries")).toBe("3");
      expect(dead?.header.get("ce-id")).toBe(failing);
      expect(dead?.data).toEqual(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "boom" })));
      expect(attempts.get("boom")).toBe(3);

      await waitFor("the later event", async () => (await effects()).some((e) => e.event_id === later));
      await waitFor("the consumer to settle", () => settled("test-dlq"));
      // The failed attempts rolled back their writes.
      expect((await effects()).filter((e) => e.event_id === failing)).toHaveLength(0);
      expect(attempts.get("boom")).toBe(3);
    } finally {
      await consumer.stop();
    }
  });

  it("dead-letters a message that does not decode at once, without calling the handler", async () => {
    let calls = 0;
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-poison",
      maxDeliver: 5,
      handlers: [
        {
          schema: EchoRequestSchema,
          handle() {
            calls++;
            return Promise.resolve();
          },
        },
      ],
    });
    try {
      const h = natsHeaders();
      const eventId = uuidv7();
      h.set("ce-id", eventId);
      await jetstream(env.nc).publish(EchoRequestSchema.typeName, new Uint8Array([0xff, 0xff, 0xff]), {
        headers: h,
      });
      const [dead] = await waitFor("the dead letter", async () => {
        const found = await deadLetters("test-poison");
        return found.length > 0 ? found : undefined;
      });
      expect(dead?.header.get("zero-dlq-deliveries")).toBe("1");
      expect(dead?.header.get("zero-dlq-error")).toMatch(/^cannot decode zero\.testing\.v1\.EchoRequest/);
      await waitFor("the consumer to settle", () => settled("test-poison"));
      expect(calls).toBe(0);
    } finally {
      await consumer.stop();
    }
  });

  it("updates the durable's configuration when a new version starts with other settings", async () => {
    const handle = () => Promise.resolve();
    const base = {
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-upsert",
    };
    const first = await startConsumer({
      ...base,
      maxDeliver: 3,
      handlers: [{ schema: EchoRequestSchema, handle }],
    });
    await first.stop();
    const jsm = await jetstreamManager(env.nc);
    const before = (await jsm.consumers.info(TEST_STREAM, "test-upsert")).config;
    expect(before.filter_subject).toBe("zero.testing.v1.EchoRequest");

    const second = await startConsumer({
      ...base,
      maxDeliver: 4,
      handlers: [
        { schema: EchoRequestSchema, handle },
        { schema: UserRegisteredSchema, handle },
      ],
    });
    await second.stop();
    const after = (await jsm.consumers.info(TEST_STREAM, "test-upsert")).config;
    expect(after.max_deliver).toBe((before.max_deliver ?? 0) + 1);
    expect(after.filter_subject ?? "").toBe(""); // two types on a two-subject stream: no filter
  });

  it('starts a durable created with deliverPolicy "new" after the events already published; an existing one keeps its position', async () => {
    const seen: string[] = [];
    const start = () =>
      startConsumer({
        db: env.db,
        nc: env.nc,
        logger: env.log.logger,
        stream: TEST_STREAM,
        durable: "test-deliver-new",
        deliverPolicy: "new",
        handlers: [
          {
            schema: EchoRequestSchema,
            handle(message) {
              seen.push(message.message);
              return Promise.resolve();
            },
          },
        ],
      });
    await publishEcho("before creation", uuidv7());
    const first = await start();
    try {
      await publishEcho("after creation", uuidv7());
      await waitFor("the later event", () => seen.includes("after creation"));
      await waitFor("the consumer to settle", () => settled("test-deliver-new"));
    } finally {
      await first.stop();
    }
    // Published while no process consumes: the durable exists, so "new" no longer applies and the
    // restarted consumer picks up where it stopped.
    await publishEcho("while stopped", uuidv7());
    const second = await start();
    try {
      await waitFor("the event published while stopped", () => seen.includes("while stopped"));
      await waitFor("the consumer to settle", () => settled("test-deliver-new"));
    } finally {
      await second.stop();
    }
    expect(seen).toEqual(["after creation", "while stopped"]);
    const jsm = await jetstreamManager(env.nc);
    expect((await jsm.consumers.info(TEST_STREAM, "test-deliver-new")).config.deliver_policy).toBe("new");
  });

  it('reads the events already in the stream with the default deliverPolicy ("all")', async () => {
    const seen: string[] = [];
    await publishEcho("already there", uuidv7());
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-deliver-all",
      handlers: [
        {
          schema: EchoRequestSchema,
          handle(message) {
            seen.push(message.message);
            return Promise.resolve();
          },
        },
      ],
    });
    try {
      await waitFor("the earlier event", () => seen.includes("already there"));
    } finally {
      await consumer.stop();
    }
    expect(seen).toEqual(["already there"]);
  });
});
