import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { fromBinary } from "@bufbuild/protobuf";
import { trace, SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createDb, migrateToLatest } from "@zero/kit/db";
import { startConsumer } from "@zero/kit/events/consumer";
import { outboxMigration } from "@zero/kit/events/outbox";
import { createLogger } from "@zero/kit/log";
import { startTelemetry, type Telemetry } from "@zero/kit/telemetry";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson, startPlatform, type TestPlatform } from "./platform.js";

// Telemetry before the platform: the gateway, auth and the relay all trace through this SDK.
const spans = new InMemorySpanExporter();
let telemetry: Telemetry;
let platform: TestPlatform;

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: "e2e", spanProcessors: [new SimpleSpanProcessor(spans)] });
  platform = await startPlatform();
});
afterAll(async () => {
  await platform?.close();
  await telemetry?.shutdown();
});

/** Polls until `check` returns a value (bounded), so no test sleeps for a guessed time. */
async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("UserRegistered on JetStream", () => {
  test("carries the trace id of the gateway's server span in its traceparent", async () => {
    const reg = aRegistration();
    const res = await postJson(`${platform.url}/v1/auth/register`, reg);
    expect(res.status).toBe(201);
    const userId = (res.body as { user: { id: string } }).user.id;

    // Read the stream directly, as any consumer would.
    const nc = await connect({ servers: platform.nats.url });
    try {
      const js = jetstream(nc);
      const message = await eventually(async () => {
        // The stream appears once auth's event publisher has reached NATS (in the background).
        const consumer = await js.consumers.get("ZERO_AUTH").catch(() => undefined);
        if (consumer === undefined) return undefined;
        const batch = await consumer.fetch({ max_messages: 100, expires: 1000 });
        for await (const m of batch) {
          const event = fromBinary(UserRegisteredSchema, m.data);
          if (event.userId === userId) return m;
        }
        return undefined;
      });
      expect(message.subject).toBe("zero.auth.v1.UserRegistered");
      const event = fromBinary(UserRegisteredSchema, message.data);
      expect(event.email).toBe(String(reg.email));
      expect(message.headers?.get("ce-type")).toBe("zero.auth.v1.UserRegistered");
      expect(message.headers?.get("Nats-Msg-Id")).toBe(message.headers?.get("ce-id"));
      // No secret travels in the event: neither the password nor a token.
      expect(Buffer.from(message.data).toString("latin1")).not.toContain(String(reg.password));

      const traceparent = message.headers?.get("traceparent") ?? "";
      const [, traceId] = traceparent.split("-");
      const gatewaySpan = spans
        .getFinishedSpans()
        .find((s) => s.kind === SpanKind.SERVER && s.instrumentationScope.name === "@zero/gateway");
      expect(gatewaySpan, "the gateway's server span").toBeDefined();
      expect(traceId).toBe(gatewaySpan?.spanContext().traceId);
      // And auth's server span for Register belongs to the same trace.
      const authSpan = spans
        .getFinishedSpans()
        .find((s) => s.kind === SpanKind.SERVER && s.name.includes("zero.auth.v1.AuthService/Register"));
      expect(authSpan?.spanContext().traceId).toBe(traceId);
    } finally {
      await nc.close();
    }
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});

describe("NATS outage", () => {
  let consumerDb: TestDatabase;
  beforeAll(async () => {
    consumerDb = await createTestDatabase("e2e_consumer");
  });
  afterAll(async () => {
    await consumerDb?.drop();
  });

  test("20 registrations succeed while NATS is down; afterwards a consumer sees each event exactly once", async () => {
    await platform.nats.stop();
    const userIds: string[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const res = await postJson(`${platform.url}/v1/auth/register`, aRegistration());
        expect(res.status).toBe(201);
        userIds.push((res.body as { user: { id: string } }).user.id);
      }
    } finally {
      await platform.nats.start();
    }

    // A downstream service (as users/notifications will be): durable consumer + inbox.
    const logger = createLogger("e2e-consumer", { level: "silent" });
    const db = createDb(consumerDb.url);
    await migrateToLatest(db, { "0000_kit_outbox": outboxMigration });
    const nc = await connect({ servers: platform.nats.url });
    const seen = new Map<string, number>();
    const consumer = await startConsumer({
      db,
      nc,
      logger,
      stream: "ZERO_AUTH",
      durable: "e2e-outage",
      handlers: [
        {
          schema: UserRegisteredSchema,
          handle(event) {
            seen.set(event.userId, (seen.get(event.userId) ?? 0) + 1);
            return Promise.resolve();
          },
        },
      ],
    });
    try {
      await eventually(() => (userIds.every((id) => seen.has(id)) ? true : undefined), 30_000);
      // Let any duplicate that would come arrive before counting.
      await new Promise((r) => setTimeout(r, 500));
      expect(userIds.map((id) => seen.get(id))).toEqual(userIds.map(() => 1));
    } finally {
      await consumer.stop();
      await nc.close();
      await db.destroy();
    }
  });
});
