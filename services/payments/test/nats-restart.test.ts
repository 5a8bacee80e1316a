import { setTimeout as sleep } from "node:timers/promises";
import { fromBinary } from "@bufbuild/protobuf";
import { PaymentCreatedSchema, PaymentSucceededSchema } from "@zero/proto/zero/payments/v1/events_pb";
import { PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aCard,
  aPayment,
  eventually,
  newKey,
  readPaymentStream,
  startTestPayments,
  type TestPayments,
} from "./fixtures.js";

// Reliability: NATS goes down and comes back while payments are being created and processed.
// Every acknowledged payment's events reach the stream exactly once (the outbox holds them while
// NATS is away; Nats-Msg-Id deduplicates a republish).

let nats: TestNats;
let t: TestPayments;

beforeAll(async () => {
  // fsync every write where the server supports it (2.10+); 2.9 flushes on the graceful stop used here.
  nats = await startNats({ syncAlways: true });
  t = await startTestPayments({ nats });
});

afterAll(async () => {
  await t?.close();
  await nats?.stop();
});

describe("a NATS restart during payment processing", () => {
  it("loses no event", { timeout: 120_000 }, async () => {
    const user = await t.user();
    const paid: string[] = [];
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop || i < 30; i++) {
        const { payment } = await t.client.createPayment(
          aPayment({ amount: BigInt(100 + i) }),
          user.as(newKey()),
        );
        const { payment: done } = await t.client.processPayment(
          { paymentId: payment!.id, card: aCard() },
          user.as(newKey()),
        );
        expect(done?.status).toBe(PaymentStatus.COMPLETED);
        paid.push(payment!.id);
      }
    })();

    await eventually(
      () => Promise.resolve(paid.length),
      (n) => n >= 5,
    );
    await nats.stop();
    const duringOutage = paid.length;
    // The service keeps taking payments while NATS is down.
    await eventually(
      () => Promise.resolve(paid.length),
      (n) => n >= duringOutage + 10,
      30_000,
    );
    const { rows } = await sql<{
      n: string;
    }>`select count(*) as n from kit_outbox where published_at is null`.execute(t.server.db);
    expect(Number(rows[0]?.n)).toBeGreaterThan(0);
    await sleep(500);
    await nats.start();
    stop = true;
    await traffic;

    const stream = await eventually(
      () => readPaymentStream(nats.url),
      (messages) =>
        messages.filter((m) => m.subject === PaymentSucceededSchema.typeName).length >= paid.length &&
        messages.filter((m) => m.subject === PaymentCreatedSchema.typeName).length >= paid.length,
      60_000,
    );
    const created = stream
      .filter((m) => m.subject === PaymentCreatedSchema.typeName)
      .map((m) => fromBinary(PaymentCreatedSchema, m.data).paymentId);
    const succeeded = stream
      .filter((m) => m.subject === PaymentSucceededSchema.typeName)
      .map((m) => fromBinary(PaymentSucceededSchema, m.data).paymentId);
    // Each exactly once.
    expect([...created].sort()).toEqual([...paid].sort());
    expect([...succeeded].sort()).toEqual([...paid].sort());
    const { rows: left } = await sql<{
      n: string;
    }>`select count(*) as n from kit_outbox where published_at is null`.execute(t.server.db);
    expect(left[0]?.n).toBe("0");
  });
});
