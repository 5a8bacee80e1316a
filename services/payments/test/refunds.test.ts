import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { PaymentRefundedSchema } from "@zero/proto/zero/payments/v1/events_pb";
import { PaymentStatus, RefundStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aCard,
  aPayment,
  newKey,
  rpcError,
  startTestPayments,
  waitForEvents,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

let t: TestPayments;
let alice: TestUser;
let admin: TestUser;

beforeAll(async () => {
  t = await startTestPayments();
  alice = await t.user();
  admin = await t.admin();
});

afterAll(async () => {
  await t?.close();
});

async function aCompletedPayment(amount = 1999n) {
  const { payment } = await t.client.createPayment(aPayment({ amount }), alice.as());
  const { payment: paid } = await t.client.processPayment(
    { paymentId: payment!.id, card: aCard() },
    alice.as(),
  );
  expect(paid?.status).toBe(PaymentStatus.COMPLETED);
  return paid!;
}

describe("CreateRefund", () => {
  it("refunds everything when no amount is given, and publishes PaymentRefunded", async () => {
    const payment = await aCompletedPayment();
    const { refund, payment: after } = await t.client.createRefund(
      { paymentId: payment.id, reason: "customer returned the goods" },
      admin.as(),
    );
    expect(refund).toMatchObject({
      amount: 1999n,
      currency: "EUR",
      status: RefundStatus.SUCCEEDED,
      reason: "customer returned the goods",
    });
    expect(after).toMatchObject({ status: PaymentStatus.REFUNDED, amountRefunded: 1999n });
    expect(after!.transitions.at(-1)).toMatchObject({
      fromStatus: PaymentStatus.COMPLETED,
      toStatus: PaymentStatus.REFUNDED,
      actor: `admin:${admin.id}`,
    });
    const [event] = await waitForEvents(t.nats.url, PaymentRefundedSchema, (e) => e.paymentId === payment.id);
    expect(event!.event).toMatchObject({
      refundId: refund!.id,
      refundAmount: 1999n,
      amountRefunded: 1999n,
      fullyRefunded: true,
    });
  });

  it("takes several partial refunds, each with its own state, never beyond the captured amount", async () => {
    const payment = await aCompletedPayment(1999n);
    const first = await t.client.createRefund({ paymentId: payment.id, amount: 500n }, admin.as());
    expect(first.payment).toMatchObject({ status: PaymentStatus.PARTIALLY_REFUNDED, amountRefunded: 500n });
    const second = await t.client.createRefund({ paymentId: payment.id, amount: 700n }, admin.as());
    expect(second.payment).toMatchObject({ status: PaymentStatus.PARTIALLY_REFUNDED, amountRefunded: 1200n });

    const tooMuch = await rpcError(
      t.client.createRefund({ paymentId: payment.id, amount: 800n }, admin.as()),
    );
    expect(tooMuch.code).toBe(Code.FailedPrecondition);
    expect(tooMuch.findDetails(ErrorInfoSchema)[0]?.reason).toBe("REFUND_EXCEEDS_CAPTURED");
    expect(tooMuch.rawMessage).toMatch(/799 still refundable/);

    const last = await t.client.createRefund({ paymentId: payment.id, amount: 799n }, admin.as());
    expect(last.payment).toMatchObject({ status: PaymentStatus.REFUNDED, amountRefunded: 1999n });
    const more = await rpcError(t.client.createRefund({ paymentId: payment.id, amount: 1n }, admin.as()));
    expect(more.code).toBe(Code.FailedPrecondition);

    const { refunds } = await t.client.listRefunds({ paymentId: payment.id }, alice.as());
    expect(refunds.map((r) => [r.amount, r.status])).toEqual([
      [500n, RefundStatus.SUCCEEDED],
      [700n, RefundStatus.SUCCEEDED],
      [799n, RefundStatus.SUCCEEDED],
    ]);
    const events = await waitForEvents(
      t.nats.url,
      PaymentRefundedSchema,
      (e) => e.paymentId === payment.id,
      3,
    );
    expect(events.map((e) => [e.event.refundAmount, e.event.amountRefunded, e.event.fullyRefunded])).toEqual([
      [500n, 500n, false],
      [700n, 1200n, false],
      [799n, 1999n, true],
    ]);
    // One transition per status change: completed → partially_refunded → refunded.
    const { payment: final } = await t.client.getPayment({ paymentId: payment.id }, alice.as());
    expect(final!.transitions.map((s) => s.toStatus)).toEqual([
      PaymentStatus.PROCESSING,
      PaymentStatus.COMPLETED,
      PaymentStatus.PARTIALLY_REFUNDED,
      PaymentStatus.REFUNDED,
    ]);
  });

  it("never over-refunds under concurrency", async () => {
    const payment = await aCompletedPayment(1000n);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        t.client.createRefund({ paymentId: payment.id, amount: 300n }, admin.as()),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(3);
    for (const r of results) {
      if (r.status === "rejected")
        expect((await rpcError(Promise.reject(r.reason as Error))).code).toBe(Code.FailedPrecondition);
    }
    const row = await t.server.db
      .selectFrom("payments")
      .selectAll()
      .where("id", "=", payment.id)
      .executeTakeFirstOrThrow();
    expect(row.amount_refunded).toBe("900");
    expect(row.status).toBe("partially_refunded");
  });

  it("is idempotent: the same key answers the same refund, other parameters are refused", async () => {
    const payment = await aCompletedPayment();
    const key = newKey();
    const first = await t.client.createRefund({ paymentId: payment.id, amount: 100n }, admin.as(key));
    const again = await t.client.createRefund({ paymentId: payment.id, amount: 100n }, admin.as(key));
    expect(again.refund?.id).toBe(first.refund?.id);
    const { refunds } = await t.client.listRefunds({ paymentId: payment.id }, admin.as());
    expect(refunds).toHaveLength(1);
    const reused = await rpcError(
      t.client.createRefund({ paymentId: payment.id, amount: 200n }, admin.as(key)),
    );
    expect(reused.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
  });

  it("refuses refunds of unpaid payments, negative amounts, and callers who are not admins", async () => {
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const unpaid = await rpcError(t.client.createRefund({ paymentId: payment!.id }, admin.as()));
    expect(unpaid.code).toBe(Code.FailedPrecondition);
    expect(unpaid.findDetails(ErrorInfoSchema)[0]?.reason).toBe("NOT_REFUNDABLE");
    const negative = await rpcError(
      t.client.createRefund({ paymentId: payment!.id, amount: -1n }, admin.as()),
    );
    expect(negative.code).toBe(Code.InvalidArgument);
    const paid = await aCompletedPayment();
    const owner = await rpcError(t.client.createRefund({ paymentId: paid.id }, alice.as()));
    expect(owner.code).toBe(Code.PermissionDenied);
    const missing = await rpcError(
      t.client.createRefund({ paymentId: "0193a1b2-0000-7000-8000-00000000dead" }, admin.as()),
    );
    expect(missing.code).toBe(Code.NotFound);
  });
});
