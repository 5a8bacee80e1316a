import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { PaymentFailedSchema, PaymentSucceededSchema } from "@zero/proto/zero/payments/v1/events_pb";
import { PaymentMethod, PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGNATURE_HEADER } from "../src/webhook-signature.js";
import {
  aPayment,
  aProviderEvent,
  eventually,
  OLD_WEBHOOK_SECRET,
  rpcError,
  signed,
  startTestPayments,
  waitForEvents,
  WEBHOOK_SECRET,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

let t: TestPayments;
let alice: TestUser;

beforeAll(async () => {
  t = await startTestPayments({
    env: {
      // Rotation in progress: the new secret first, the old one still accepted.
      PAYMENTS_WEBHOOK_SECRETS: `${WEBHOOK_SECRET},${OLD_WEBHOOK_SECRET}`,
      // The simulated provider's own webhooks must not settle payments behind these tests' backs.
      PAYMENTS_SETTLE_DELAY_MS: "600000",
    },
  });
  alice = await t.user();
});

afterAll(async () => {
  await t?.close();
});

/** A bank transfer left `processing` by the provider, and its provider id. */
async function aProcessingPayment() {
  const { payment } = await t.client.createPayment(
    aPayment({ method: PaymentMethod.BANK_TRANSFER }),
    alice.as(),
  );
  const { payment: processing } = await t.client.processPayment({ paymentId: payment!.id }, alice.as());
  expect(processing?.status).toBe(PaymentStatus.PROCESSING);
  const row = await t.server.db
    .selectFrom("payments")
    .selectAll()
    .where("id", "=", payment!.id)
    .executeTakeFirstOrThrow();
  return { payment: processing!, providerId: row.provider_payment_id! };
}

const send = (body: Uint8Array, signature: string | undefined) =>
  t.client.handleProviderWebhook(
    { rawBody: { contentType: "application/json", data: body } },
    signature === undefined ? {} : { headers: { [SIGNATURE_HEADER]: signature } },
  );

const statusOf = async (id: string) => (await t.client.getPayment({ paymentId: id }, alice.as())).payment!;

describe("HandleProviderWebhook", () => {
  it("accepts a signed event at once and applies it asynchronously", async () => {
    const { payment, providerId } = await aProcessingPayment();
    const { body, signature } = signed(aProviderEvent("payment_intent.succeeded", { id: providerId }));
    expect(await send(body, signature)).toMatchObject({ received: true, duplicate: false });
    const settled = await eventually(
      () => statusOf(payment.id),
      (p) => p.status === PaymentStatus.COMPLETED,
    );
    expect(settled.transitions.at(-1)).toMatchObject({
      actor: "provider",
      toStatus: PaymentStatus.COMPLETED,
    });
    await waitForEvents(t.nats.url, PaymentSucceededSchema, (e) => e.paymentId === payment.id);
  });

  it("applies a failure with the provider's code", async () => {
    const { payment, providerId } = await aProcessingPayment();
    const event = aProviderEvent("payment_intent.payment_failed", {
      id: providerId,
      last_payment_error: { code: "account_closed", message: "The bank account is closed." },
    });
    const { body, signature } = signed(event);
    await send(body, signature);
    const failed = await eventually(
      () => statusOf(payment.id),
      (p) => p.status === PaymentStatus.FAILED,
    );
    expect(failed).toMatchObject({
      failureCode: "account_closed",
      failureMessage: "The bank account is closed.",
    });
    await waitForEvents(
      t.nats.url,
      PaymentFailedSchema,
      (e) => e.paymentId === payment.id && e.failureCode === "account_closed",
    );
  });

  it("acknowledges a replayed event id and ignores it", async () => {
    const { payment, providerId } = await aProcessingPayment();
    const event = aProviderEvent("payment_intent.succeeded", { id: providerId });
    const { body, signature } = signed(event);
    expect((await send(body, signature)).duplicate).toBe(false);
    await eventually(
      () => statusOf(payment.id),
      (p) => p.status === PaymentStatus.COMPLETED,
    );
    // The same event again (a provider retry, or an attacker replaying a captured request).
    const again = signed(event);
    expect(await send(again.body, again.signature)).toMatchObject({ received: true, duplicate: true });
    // A different event for the same payment is stored but changes nothing: it is settled.
    const late = signed(aProviderEvent("payment_intent.payment_failed", { id: providerId }));
    await send(late.body, late.signature);
    const outcome = await eventually(
      () =>
        t.server.db
          .selectFrom("provider_events")
          .select(["outcome"])
          .where(
            "payload",
            "@>",
            JSON.stringify({ id: (JSON.parse(new TextDecoder().decode(late.body)) as { id: string }).id }),
          )
          .executeTakeFirst(),
      (row) => row?.outcome != null,
    );
    expect(outcome?.outcome).toMatch(/ignored: payment .* is already completed/);
    expect((await statusOf(payment.id)).status).toBe(PaymentStatus.COMPLETED);
    const rows = await t.server.db
      .selectFrom("payment_transitions")
      .selectAll()
      .where("payment_id", "=", payment.id)
      .execute();
    expect(rows).toHaveLength(2);
  });

  it("accepts every secret of a rotation, and a header carrying several signatures", async () => {
    for (const secrets of [
      [OLD_WEBHOOK_SECRET],
      [WEBHOOK_SECRET],
      [`whsec_${"c".repeat(40)}`, OLD_WEBHOOK_SECRET],
    ]) {
      const { providerId } = await aProcessingPayment();
      const { body, signature } = signed(aProviderEvent("payment_intent.succeeded", { id: providerId }), {
        secrets,
      });
      expect((await send(body, signature)).received).toBe(true);
    }
  });

  it.each([
    ["no signature", undefined, "WEBHOOK_SIGNATURE_MISSING"],
    ["an unknown secret", { secrets: [`whsec_${"z".repeat(40)}`] }, "WEBHOOK_SIGNATURE_INVALID"],
    [
      "a timestamp 6 minutes old",
      { timestamp: Math.floor(Date.now() / 1000) - 360 },
      "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
    ],
    [
      "a timestamp 6 minutes ahead",
      { timestamp: Math.floor(Date.now() / 1000) + 360 },
      "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
    ],
  ])("refuses %s with UNAUTHENTICATED, storing nothing", async (_, opts, reason) => {
    const event = aProviderEvent("payment_intent.succeeded", { id: "pi_x" });
    const { body, signature } = signed(event, opts ?? {});
    const error = await rpcError(send(body, opts === undefined ? undefined : signature));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe(reason);
    const stored = await t.server.db
      .selectFrom("provider_events")
      .selectAll()
      .where("event_id", "=", event.id)
      .execute();
    expect(stored).toEqual([]);
  });

  it("refuses a body changed after signing, and malformed signature headers", async () => {
    const { body, signature } = signed(aProviderEvent("payment_intent.succeeded", { id: "pi_y", amount: 1 }));
    const tampered = new TextEncoder().encode(
      new TextDecoder().decode(body).replace('"amount":1', '"amount":2'),
    );
    expect((await rpcError(send(tampered, signature))).code).toBe(Code.Unauthenticated);
    for (const header of [
      "garbage",
      "t=abc,v1=00",
      `v1=${"0".repeat(64)}`,
      `t=${Math.floor(Date.now() / 1000)}`,
    ]) {
      expect((await rpcError(send(body, header))).code).toBe(Code.Unauthenticated);
    }
  });

  it("refuses a signed body that is not an event with INVALID_ARGUMENT", async () => {
    for (const payload of [[1, 2], { type: "x" }, "text"]) {
      const { body, signature } = signed(payload);
      expect((await rpcError(send(body, signature))).code).toBe(Code.InvalidArgument);
    }
  });

  it("does not apply an event whose amount differs from the payment's, nor one for an unknown payment", async () => {
    const { payment, providerId } = await aProcessingPayment();
    const wrong = aProviderEvent("payment_intent.succeeded", { id: providerId, amount: 1 });
    const unknown = aProviderEvent("payment_intent.succeeded", { id: "pi_nobody" });
    for (const event of [wrong, unknown]) {
      const { body, signature } = signed(event);
      await send(body, signature);
    }
    const outcomes = await eventually(
      () =>
        t.server.db
          .selectFrom("provider_events")
          .select(["event_id", "outcome"])
          .where("event_id", "in", [wrong.id, unknown.id])
          .orderBy("event_id")
          .execute(),
      (rows) => rows.length === 2 && rows.every((r) => r.outcome !== null),
    );
    const byId = Object.fromEntries(outcomes.map((r) => [r.event_id, r.outcome]));
    expect(byId[wrong.id]).toMatch(/^rejected: amount or currency differs/);
    expect(byId[unknown.id]).toMatch(/^ignored: no payment/);
    expect((await statusOf(payment.id)).status).toBe(PaymentStatus.PROCESSING);
  });
});
