import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsumer } from "../src/events/consumer.js";
import { appendEvent } from "../src/events/outbox.js";
import { startRelay } from "../src/events/relay.js";
import { installTracing, startEventsEnv, TEST_STREAM, waitFor, type EventsEnv } from "./events-fixtures.js";

installTracing();
let env: EventsEnv;

beforeAll(async () => {
  env = await startEventsEnv("outage");
});
afterAll(async () => {
  await env.close();
});

describe("NATS outage", () => {
  it("keeps events committed while NATS is down and delivers each exactly once after it returns", async () => {
    const relay = startRelay({ db: env.db, nc: env.nc, logger: env.log.logger, pollIntervalMs: 50 });
    const handled: string[] = [];
    const consumer = await startConsumer({
      db: env.db,
      nc: env.nc,
      logger: env.log.logger,
      stream: TEST_STREAM,
      durable: "test-outage",
      handlers: [
        {
          schema: UserRegisteredSchema,
          async handle(message, ctx) {
            await ctx.trx
              .insertInto("test_effects")
              .values({ event_id: ctx.eventId, note: message.email })
              .execute();
            handled.push(ctx.eventId);
          },
        },
      ],
    });
    const relayWarnings = () => env.log.lines.filter((l) => l.msg.startsWith("cannot publish events"));
    try {
      await env.nats.stop();
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push(
          await env.db.transaction().execute((trx) =>
            appendEvent(
              trx,
              UserRegisteredSchema,
              create(UserRegisteredSchema, { email: `u${i}@example.com` }),
              {
                source: "zero.test",
              },
            ),
          ),
        );
        relay.wake();
      }
      await waitFor("the relay to notice the outage", () => relayWarnings().length > 0);
      const unpublished = await env.db
        .selectFrom("kit_outbox")
        .select("id")
        .where("published_at", "is", null)
        .execute();
      expect(new Set(unpublished.map((r) => r.id))).toEqual(new Set(ids));

      await env.nats.start();
      await waitFor("all 20 events handled", () => new Set(handled).size === 20, 30_000);
      await waitFor("the consumer to settle", async () => {
        const info = await (await jetstreamManager(env.nc)).consumers.info(TEST_STREAM, "test-outage");
        return info.num_pending === 0 && info.num_ack_pending === 0;
      });

      expect(handled).toHaveLength(20);
      expect(new Set(handled)).toEqual(new Set(ids));
      const effects = await env.db.selectFrom("test_effects").select("event_id").execute();
      expect(effects).toHaveLength(20);
      const stream = await (await jetstreamManager(env.nc)).streams.info(TEST_STREAM);
      expect(stream.state.messages).toBe(20);
      // One warning for the outage, one note when it ended: not one line per retry.
      expect(relayWarnings()).toHaveLength(1);
      expect(env.log.lines.filter((l) => l.msg === "publishing events again")).toHaveLength(1);
    } finally {
      await consumer.stop();
      await relay.stop();
    }
  });
});
