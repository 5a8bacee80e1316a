import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOutboxPublisher } from "../src/events/outbox-publisher.js";
import { appendEvent } from "../src/events/outbox.js";
import { connectNats } from "../src/events/nats.js";
import { startEventsEnv, TEST_STREAM, waitFor, type EventsEnv } from "./events-fixtures.js";

let env: EventsEnv;
beforeAll(async () => {
  env = await startEventsEnv("publisher");
});
afterAll(async () => {
  await env.close();
});

describe("outbox publisher", () => {
  it("lets a service start and commit events while NATS is down, and publishes them once it is up", async () => {
    await env.nats.stop();
    const publisher = startOutboxPublisher({
      db: env.db,
      natsUrl: env.nats.url,
      logger: env.log.logger,
      streams: [{ name: TEST_STREAM, subjects: ["zero.auth.v1.>", "zero.testing.v1.>"] }],
    });
    try {
      await expect(publisher.check()).rejects.toThrow(/starting/);
      const id = await env.db.transaction().execute((trx) =>
        appendEvent(trx, UserRegisteredSchema, create(UserRegisteredSchema, { email: "a@example.com" }), {
          source: "zero.test",
        }),
      );
      publisher.wake(); // before the relay exists: a no-op, not an error

      await env.nats.start();
      await waitFor("publisher ready", () =>
        publisher.check().then(
          () => true,
          () => false,
        ),
      );
      const nc = await connectNats(env.nats.url, env.log.logger);
      try {
        const jsm = await jetstreamManager(nc);
        const message = await waitFor("the event on the stream", () =>
          jsm.streams
            .getMessage(TEST_STREAM, { last_by_subj: "zero.auth.v1.UserRegistered" })
            .then((m) => (m?.header.get("Nats-Msg-Id") === id ? m : undefined))
            .catch(() => undefined),
        );
        expect(message.header.get("Nats-Msg-Id")).toBe(id);
        expect((await jsm.streams.info("ZERO_DLQ")).config.name).toBe("ZERO_DLQ");
      } finally {
        await nc.close();
      }
    } finally {
      await publisher.stop();
    }
  });

  it("stops cleanly while still waiting for NATS", async () => {
    await env.nats.stop();
    try {
      const publisher = startOutboxPublisher({
        db: env.db,
        natsUrl: env.nats.url,
        logger: env.log.logger,
        streams: [{ name: TEST_STREAM, subjects: ["zero.auth.v1.>", "zero.testing.v1.>"] }],
      });
      const startedAt = Date.now();
      await publisher.stop();
      expect(Date.now() - startedAt).toBeLessThan(2000);
    } finally {
      await env.nats.start();
    }
  });
});
