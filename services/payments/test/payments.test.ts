import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import {
  PaymentCancelledSchema,
  PaymentCreatedSchema,
  PaymentFailedSchema,
  PaymentSucceededSchema,
} from "@zero/proto/zero/payments/v1/events_pb";
import { PaymentMethod, PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aCard,
  aPayment,
  eventually,
  rpcError,
  startTestPayments,
  waitForEvents,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

let t: TestPayments;
let alice: TestUser;

beforeAll(async () => {
  t = await startTestPayments();
  alice = await t.user({ email: "alice@example.com" });
});

afterAll(async () => {
  await t?.close();
});

const fields = (error: ConnectError) =>
  error
    .findDetails(BadRequestSchema)
    .flatMap((d) => d.fieldViolations)
    .map((v) => v.field)
    .sort();

describe("CreatePayment", () => {
  it("creates a pending payment owned by the caller, in minor units, and publishes PaymentCreated", async () => {
    const { payment } = await t.client.createPayment(
      aPayment({
        amount: 1999n,
        currency: " eur ",
        metadata: { cart: "c-1" },
        orderId: "0193a1b2-0000-7000-8000-000000000001",
      }),
      alice.as(),
    );
    expect(payment).toMatchObject({
      userId: alice.id,
      amount: 1999n,
      currency: "EUR",
      method: PaymentMethod.CARD,
      status: PaymentStatus.PENDING,
      metadata: { cart: "c-1" },
      orderId: "0193a1b2-0000-7000-8000-000000000001",
      receiptEmail: "alice@example.com",
      amountRefunded: 0n,
    });
    expect(payment!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    expect(payment!.reference).toMatch(/^pay_[a-z2-9]{20}$/);
    const [published] = await waitForEvents(
      t.nats.url,
      PaymentCreatedSchema,
      (e) => e.paymentId === payment!.id,
    );
    expect(published!.event).toMatchObject({
      userId: alice.id,
      amount: 1999n,
      currency: "EUR",
      reference: payment!.reference,
      receiptEmail: "alice@example.com",
    });
    expect(published!.headers["ce-source"]).toBe("zero.payments");
  });

  it("accepts JPY without decimals and KWD with three", async () => {
    const jpy = await t.client.createPayment(aPayment({ amount: 1_000_000n, currency: "JPY" }), alice.as());
    expect(jpy.payment?.amount).toBe(1_000_000n);
    const kwd = await t.client.createPayment(
      aPayment({ amount: 1_000_000_000n, currency: "KWD" }),
      alice.as(),
    );
    expect(kwd.payment?.currency).toBe("KWD");
    // 1,000,001 JPY is over the bound.
    const error = await rpcError(
      t.client.createPayment(aPayment({ amount: 1_000_001n, currency: "JPY" }), alice.as()),
    );
    expect(fields(error)).toEqual(["amount"]);
  });

  it.each([
    ["a zero amount", { amount: 0n }, ["amount"]],
    ["a negative amount", { amount: -5n }, ["amount"]],
    ["an unknown currency", { currency: "XYZ" }, ["currency"]],
    ["a withdrawn currency", { currency: "HRK" }, ["currency"]],
    ["a fund code", { currency: "CLF" }, ["currency"]],
    ["no currency", { currency: "" }, ["currency"]],
    ["no method", { method: PaymentMethod.UNSPECIFIED }, ["method"]],
    ["a long description", { description: "d".repeat(501) }, ["description"]],
    [
      "too many metadata keys",
      { metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"])) },
      ["metadata"],
    ],
    ["a bad metadata key", { metadata: { "has space": "v" } }, ["metadata"]],
    ["a long metadata value", { metadata: { note: "v".repeat(501) } }, ["metadata.note"]],
    ["a malformed order id", { orderId: "order-1" }, ["order_id"]],
    ["a malformed receipt email", { receiptEmail: "not-an-email" }, ["receipt_email"]],
    [
      "several problems",
      { amount: 0n, currency: "EURO", method: PaymentMethod.UNSPECIFIED },
      ["amount", "currency", "method"],
    ],
  ])("refuses %s with INVALID_ARGUMENT naming the fields", async (_, overrides, expected) => {
    const error = await rpcError(t.client.createPayment(aPayment(overrides), alice.as()));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fields(error)).toEqual([...expected].sort());
  });

  it.each([
    ["the description", { description: "a\u0000b" }, "description", /NUL character \(U\+0000\)/],
    ["a metadata value", { metadata: { note: "a\u0000b" } }, "metadata.note", /NUL character \(U\+0000\)/],
    ["a metadata key", { metadata: { "k\u0000": "v" } }, "metadata", /keys must not contain the NUL/],
    ["the receipt email", { receiptEmail: "a\u0000b@example.com" }, "receipt_email", /NUL character/],
    ["the order id", { orderId: "\u0000" }, "order_id", /NUL character/],
    ["the currency", { currency: "EU\u0000R" }, "currency", /NUL character/],
    [
      "the receipt email (another control character)",
      { receiptEmail: "a\u0001b@example.com" },
      "receipt_email",
      /email address/,
    ],
  ])(
    "refuses a NUL in %s with INVALID_ARGUMENT naming the field, and stores nothing",
    async (_, overrides, field, description) => {
      const before = await t.server.db
        .selectFrom("payments")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      const error = await rpcError(t.client.createPayment(aPayment(overrides), alice.as()));
      expect(error.code).toBe(Code.InvalidArgument);
      const violations = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      expect(violations.map((v) => v.field)).toEqual([field]);
      expect(violations[0]!.description).toMatch(description);
      const after = await t.server.db
        .selectFrom("payments")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow();
      expect(after.n).toBe(before.n);
    },
  );

  it("refuses anonymous callers and callers that are not user accounts", async () => {
    expect((await rpcError(t.client.createPayment(aPayment()))).code).toBe(Code.Unauthenticated);
    const service = await t.issuer.service("orders");
    const error = await rpcError(
      t.client.createPayment(aPayment(), { headers: { authorization: `Bearer ${service}` } }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
  });
});

describe("ProcessPayment", () => {
  const process = async (card: string | undefined, method = PaymentMethod.CARD) => {
    const { payment } = await t.client.createPayment(aPayment({ method }), alice.as());
    return (
      await t.client.processPayment(
        { paymentId: payment!.id, ...(card === undefined ? {} : { card: aCard(card) }) },
        alice.as(),
      )
    ).payment!;
  };

  it("completes with 4242…, keeping only brand and last four, and records every transition", async () => {
    const payment = await process("4242 4242 4242 4242");
    expect(payment.status).toBe(PaymentStatus.COMPLETED);
    expect(payment.card).toMatchObject({ brand: "visa", last4: "4242" });
    expect(payment.transitions.map((s) => [s.fromStatus, s.toStatus, s.actor])).toEqual([
      [PaymentStatus.PENDING, PaymentStatus.PROCESSING, `user:${alice.id}`],
      [PaymentStatus.PROCESSING, PaymentStatus.COMPLETED, "provider"],
    ]);
    expect(payment.transitions.every((s) => s.time !== undefined && s.reason !== "")).toBe(true);
    const [succeeded] = await waitForEvents(
      t.nats.url,
      PaymentSucceededSchema,
      (e) => e.paymentId === payment.id,
    );
    expect(succeeded!.event).toMatchObject({ amount: 1999n, currency: "EUR", userId: alice.id });
  });

  it.each([
    ["4000000000000002", "card_declined"],
    ["4000000000009995", "insufficient_funds"],
    ["4000000000000119", "processing_error"],
  ])("fails with %s: %s, and publishes PaymentFailed", async (card, code) => {
    const payment = await process(card);
    expect(payment).toMatchObject({ status: PaymentStatus.FAILED, failureCode: code });
    expect(payment.failureMessage).not.toBe("");
    const [failed] = await waitForEvents(t.nats.url, PaymentFailedSchema, (e) => e.paymentId === payment.id);
    expect(failed!.event.failureCode).toBe(code);
  });

  it("settles the asynchronous card through the provider's webhook", async () => {
    const payment = await process("4000000000003220");
    expect(payment.status).toBe(PaymentStatus.PROCESSING);
    const settled = await eventually(
      () => t.client.getPayment({ paymentId: payment.id }, alice.as()),
      (r) => r.payment?.status === PaymentStatus.COMPLETED,
    );
    expect(settled.payment!.transitions.at(-1)).toMatchObject({
      actor: "provider",
      toStatus: PaymentStatus.COMPLETED,
    });
    expect(settled.payment!.transitions.at(-1)!.reason).toMatch(/^provider event evt_/);
  });

  it("approves PayPal at once and settles a bank transfer asynchronously", async () => {
    expect((await process(undefined, PaymentMethod.PAYPAL)).status).toBe(PaymentStatus.COMPLETED);
    const transfer = await process(undefined, PaymentMethod.BANK_TRANSFER);
    expect(transfer.status).toBe(PaymentStatus.PROCESSING);
    await eventually(
      () => t.client.getPayment({ paymentId: transfer.id }, alice.as()),
      (r) => r.payment?.status === PaymentStatus.COMPLETED,
    );
  });

  it("refuses a second processing (illegal transition) with FAILED_PRECONDITION", async () => {
    const payment = await process("4242424242424242");
    const error = await rpcError(
      t.client.processPayment({ paymentId: payment.id, card: aCard() }, alice.as()),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toMatch(/completed payment cannot become processing/);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ILLEGAL_TRANSITION");
  });

  it.each([
    ["no card for a card payment", PaymentMethod.CARD, undefined, ["card"]],
    ["a card for PayPal", PaymentMethod.PAYPAL, aCard(), ["card"]],
    ["a number failing the checksum", PaymentMethod.CARD, aCard("4242424242424241"), ["card.number"]],
    ["letters in the number", PaymentMethod.CARD, aCard("4242abcd42424242"), ["card.number"]],
    ["an expired card", PaymentMethod.CARD, { ...aCard(), expYear: 2020 }, ["card.exp_year"]],
    [
      "a bad month and cvc",
      PaymentMethod.CARD,
      { ...aCard(), expMonth: 13, cvc: "12" },
      ["card.cvc", "card.exp_month"],
    ],
  ])("refuses %s with INVALID_ARGUMENT, never echoing the number", async (_, method, card, expected) => {
    const { payment } = await t.client.createPayment(aPayment({ method }), alice.as());
    const error = await rpcError(
      t.client.processPayment(
        { paymentId: payment!.id, ...(card === undefined ? {} : { card }) },
        alice.as(),
      ),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fields(error)).toEqual([...expected].sort());
    if (card) expect(error.rawMessage).not.toContain(card.number.slice(0, 8));
    // Nothing happened: the payment can still be processed.
    const { payment: after } = await t.client.getPayment({ paymentId: payment!.id }, alice.as());
    expect(after?.status).toBe(PaymentStatus.PENDING);
  });
});

describe("CancelPayment, DeletePayment, UpdatePaymentStatus", () => {
  it("cancels a pending payment, with the reason recorded, and publishes PaymentCancelled", async () => {
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const { payment: cancelled } = await t.client.cancelPayment(
      { paymentId: payment!.id, reason: "changed my mind" },
      alice.as(),
    );
    expect(cancelled?.status).toBe(PaymentStatus.CANCELLED);
    expect(cancelled?.transitions[0]).toMatchObject({
      toStatus: PaymentStatus.CANCELLED,
      reason: "changed my mind",
    });
    await waitForEvents(
      t.nats.url,
      PaymentCancelledSchema,
      (e) => e.paymentId === payment!.id && e.reason === "changed my mind",
    );
    const error = await rpcError(
      t.client.processPayment({ paymentId: payment!.id, card: aCard() }, alice.as()),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
  });

  it("deletes (soft) only payments that never reached the provider", async () => {
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const { payment: deleted } = await t.client.deletePayment({ paymentId: payment!.id }, alice.as());
    expect(deleted?.status).toBe(PaymentStatus.CANCELLED);
    expect((await rpcError(t.client.getPayment({ paymentId: payment!.id }, alice.as()))).code).toBe(
      Code.NotFound,
    );
    // The ledger keeps the row.
    const row = await t.server.db
      .selectFrom("payments")
      .selectAll()
      .where("id", "=", payment!.id)
      .executeTakeFirstOrThrow();
    expect(row.deleted_at).not.toBeNull();

    const { payment: paid } = await t.client.createPayment(aPayment(), alice.as());
    await t.client.processPayment({ paymentId: paid!.id, card: aCard() }, alice.as());
    const error = await rpcError(t.client.deletePayment({ paymentId: paid!.id }, alice.as()));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toMatch(/ledger.*refund it instead/);
  });

  it("lets an admin override a status along legal transitions only, recording actor and reason", async () => {
    const admin = await t.admin();
    const { payment } = await t.client.createPayment(
      aPayment({ method: PaymentMethod.BANK_TRANSFER }),
      alice.as(),
    );
    // pending → completed is not a legal transition.
    const illegal = await rpcError(
      t.client.updatePaymentStatus(
        { paymentId: payment!.id, status: PaymentStatus.COMPLETED, reason: "r" },
        admin.as(),
      ),
    );
    expect(illegal.code).toBe(Code.FailedPrecondition);
    await t.client.updatePaymentStatus(
      { paymentId: payment!.id, status: PaymentStatus.PROCESSING, reason: "manual" },
      admin.as(),
    );
    const { payment: done } = await t.client.updatePaymentStatus(
      { paymentId: payment!.id, status: PaymentStatus.FAILED, reason: "bank returned the transfer" },
      admin.as(),
    );
    expect(done?.status).toBe(PaymentStatus.FAILED);
    expect(done?.transitions.at(-1)).toMatchObject({
      actor: `admin:${admin.id}`,
      reason: "bank returned the transfer",
    });
    // Refund statuses move money: only through CreateRefund.
    const { payment: paid } = await t.client.createPayment(aPayment(), alice.as());
    await t.client.processPayment({ paymentId: paid!.id, card: aCard() }, alice.as());
    const refund = await rpcError(
      t.client.updatePaymentStatus(
        { paymentId: paid!.id, status: PaymentStatus.REFUNDED, reason: "r" },
        admin.as(),
      ),
    );
    expect(refund.code).toBe(Code.FailedPrecondition);
    expect(refund.rawMessage).toMatch(/CreateRefund/);
    // Users are not admins.
    const denied = await rpcError(
      t.client.updatePaymentStatus(
        { paymentId: paid!.id, status: PaymentStatus.FAILED, reason: "r" },
        alice.as(),
      ),
    );
    expect(denied.code).toBe(Code.PermissionDenied);
    // Reason and status are required.
    const bad = await rpcError(t.client.updatePaymentStatus({ paymentId: paid!.id }, admin.as()));
    expect(fields(bad)).toEqual(["status"]);
  });
});

describe("a NUL (U+0000) in any other text field", () => {
  it("is INVALID_ARGUMENT naming the field, for ids, references and reasons alike", async () => {
    const admin = await t.admin();
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const id = payment!.id;
    // Thunks: each call starts only when awaited (a rejected promise must not sit unobserved).
    const calls: [string, () => Promise<unknown>][] = [
      ["payment_id", () => t.client.getPayment({ paymentId: "a\u0000b" }, alice.as())],
      ["reason", () => t.client.cancelPayment({ paymentId: id, reason: "a\u0000b" }, alice.as())],
      [
        "reason",
        () =>
          t.client.updatePaymentStatus(
            { paymentId: id, status: PaymentStatus.PROCESSING, reason: "\u0000" },
            admin.as(),
          ),
      ],
      ["reason", () => t.client.createRefund({ paymentId: id, amount: 1n, reason: "\u0000" }, admin.as())],
      [
        "card.number",
        () => t.client.processPayment({ paymentId: id, card: aCard("4242\u0000") }, alice.as()),
      ],
      ["user_id", () => t.client.listPayments({ userId: "\u0000" }, alice.as())],
    ];
    for (const [field, call] of calls) {
      const error = await rpcError(call());
      expect({ field, code: error.code }).toEqual({ field, code: Code.InvalidArgument });
      expect(fields(error)).toEqual([field]);
    }
    // Still pending: none of the refused calls changed it.
    const { payment: after } = await t.client.getPayment({ paymentId: id }, alice.as());
    expect(after?.status).toBe(PaymentStatus.PENDING);
  });
});

describe("GetPayment and ListPayments", () => {
  it("finds a payment by id or reference; another user gets NOT_FOUND exactly as for a missing id", async () => {
    const mallory = await t.user();
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    expect((await t.client.getPayment({ paymentId: payment!.reference }, alice.as())).payment?.id).toBe(
      payment!.id,
    );
    const theirs = await rpcError(t.client.getPayment({ paymentId: payment!.id }, mallory.as()));
    const missing = await rpcError(
      t.client.getPayment({ paymentId: "0193a1b2-0000-7000-8000-00000000beef" }, mallory.as()),
    );
    expect(theirs.code).toBe(Code.NotFound);
    expect(theirs.rawMessage.replace(payment!.id, "X")).toBe(
      missing.rawMessage.replace("0193a1b2-0000-7000-8000-00000000beef", "X"),
    );
    // Thunks: each call starts only when awaited (a rejected promise must not sit unobserved).
    for (const call of [
      () => t.client.processPayment({ paymentId: payment!.id, card: aCard() }, mallory.as()),
      () => t.client.cancelPayment({ paymentId: payment!.id }, mallory.as()),
      () => t.client.deletePayment({ paymentId: payment!.id }, mallory.as()),
      () => t.client.listRefunds({ paymentId: payment!.id }, mallory.as()),
      () => t.client.getPayment({ paymentId: payment!.reference }, mallory.as()),
    ]) {
      expect((await rpcError(call())).code).toBe(Code.NotFound);
    }
    // An admin sees it.
    const admin = await t.admin();
    expect((await t.client.getPayment({ paymentId: payment!.id }, admin.as())).payment?.userId).toBe(
      alice.id,
    );
    // Malformed ids are NOT_FOUND too, never a database error.
    expect(
      (await rpcError(t.client.getPayment({ paymentId: "'; drop table payments; --" }, alice.as()))).code,
    ).toBe(Code.NotFound);
    expect((await rpcError(t.client.getPayment({ paymentId: "" }, alice.as()))).code).toBe(
      Code.InvalidArgument,
    );
  });

  it("lists only the caller's payments, newest first, with filters and a cursor", async () => {
    const bob = await t.user();
    const created = [];
    for (const currency of ["EUR", "USD", "EUR", "EUR", "GBP"]) {
      created.push((await t.client.createPayment(aPayment({ currency }), bob.as())).payment!);
    }
    await t.client.processPayment({ paymentId: created[0]!.id, card: aCard() }, bob.as());
    const firstPage = await t.client.listPayments({ pageSize: 2 }, bob.as());
    expect(firstPage.payments.map((p) => p.id)).toEqual([created[4]!.id, created[3]!.id]);
    const seen = [...firstPage.payments];
    let token = firstPage.nextPageToken;
    while (token !== "") {
      const page = await t.client.listPayments({ pageSize: 2, pageToken: token }, bob.as());
      seen.push(...page.payments);
      token = page.nextPageToken;
    }
    expect(seen.map((p) => p.id)).toEqual(created.map((p) => p.id).reverse());

    const euros = await t.client.listPayments({ currency: "eur" }, bob.as());
    expect(euros.payments.map((p) => p.id)).toEqual([created[3]!.id, created[2]!.id, created[0]!.id]);
    const completed = await t.client.listPayments({ status: PaymentStatus.COMPLETED }, bob.as());
    expect(completed.payments.map((p) => p.id)).toEqual([created[0]!.id]);
    const future = await t.client.listPayments(
      { startTime: timestampFromDate(new Date(Date.now() + 3_600_000)) },
      bob.as(),
    );
    expect(future.payments).toEqual([]);
    const past = await t.client.listPayments(
      {
        endTime: timestampFromDate(new Date(Date.now() + 60_000)),
        startTime: timestampFromDate(new Date(Date.now() - 3_600_000)),
      },
      bob.as(),
    );
    expect(past.payments).toHaveLength(5);

    // A user cannot list someone else's payments; an admin can.
    const denied = await rpcError(t.client.listPayments({ userId: alice.id }, bob.as()));
    expect(denied.code).toBe(Code.PermissionDenied);
    const admin = await t.admin();
    const bobs = await t.client.listPayments({ userId: bob.id, pageSize: 100 }, admin.as());
    expect(bobs.payments).toHaveLength(5);

    // A token only works with the filters it was issued for.
    const euroPage = await t.client.listPayments({ currency: "EUR", pageSize: 1 }, bob.as());
    const mismatch = await rpcError(
      t.client.listPayments({ currency: "USD", pageSize: 1, pageToken: euroPage.nextPageToken }, bob.as()),
    );
    expect(mismatch.code).toBe(Code.InvalidArgument);
    const garbage = await rpcError(t.client.listPayments({ pageToken: "not-a-token" }, bob.as()));
    expect(fields(garbage)).toEqual(["page_token"]);
    const badRange = await rpcError(
      t.client.listPayments(
        { startTime: timestampFromDate(new Date()), endTime: timestampFromDate(new Date(Date.now() - 1000)) },
        bob.as(),
      ),
    );
    expect(fields(badRange)).toEqual(["end_time"]);
  });
});
