import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { createLogger } from "@zero/kit/log";
import { PaymentFailedSchema, PaymentSucceededSchema } from "@zero/proto/zero/payments/v1/events_pb";
import { PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProviderEventRow } from "../src/db/schema.js";
import { findPayment, updatePayment } from "../src/payment-store.js";
import { transitionPayment } from "../src/payment-transition.js";
import {
  createSimulatedProvider,
  TEST_CARDS,
  type ChargeOutcome,
  type PaymentProvider,
} from "../src/provider.js";
import { applyProviderEvent } from "../src/provider-webhooks.js";
import {
  NO_PROVIDER_RECORD,
  RECONCILIATION_ACTOR,
  reconcileStuckPayments,
  type SweepResult,
} from "../src/reconciliation.js";
import { SIGNATURE_HEADER } from "../src/webhook-signature.js";
import {
  aCard,
  aPayment,
  aProviderEvent,
  eventually,
  signed,
  startTestPayments,
  waitForEvents,
  WEBHOOK_SECRET,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

// A payment ProcessPayment left `processing` — its first transaction committed, then the process
// died before (or after) the provider's charge, and before recording the answer — is settled by the
// reconciliation sweep from the provider's own record. The sweep runs here against the service's
// database with a simulated provider the test charges directly (what the dead process did), so every
// case is set up exactly; the last block shows the service's own schedule doing it.

const silent = createLogger("payments", { level: "silent" });
const OLDER_THAN_MS = 120_000;

const providers: PaymentProvider[] = [];

/**
 * A fresh simulated provider (one per test: no other test's charges in its records). Its webhooks
 * are lost — they never reach the service — so only the sweep (or a webhook the test sends) settles.
 */
function aProvider(settleDelayMs = 600_000): PaymentProvider {
  const provider = createSimulatedProvider({
    webhookSecrets: () => [WEBHOOK_SECRET],
    settleDelayMs,
    logger: silent,
    deliver: () => Promise.reject(new Error("the webhook was lost")),
    maxDeliveryAttempts: 1,
  });
  providers.push(provider);
  return provider;
}

describe("the reconciliation sweep", () => {
  let t: TestPayments;
  let alice: TestUser;

  beforeAll(async () => {
    t = await startTestPayments({
      // The service's own sweep (with its own provider, which knows none of these charges) must not
      // settle these tests' payments behind their backs: it runs at start, then not for an hour.
      env: { PAYMENTS_RECONCILE_INTERVAL_MS: "3600000", PAYMENTS_SETTLE_DELAY_MS: "600000" },
    });
    alice = await t.user();
  });

  afterAll(async () => {
    for (const provider of providers) provider.close();
    await t?.close();
  });

  const sweep = (provider: PaymentProvider): Promise<SweepResult> =>
    reconcileStuckPayments({ db: t.server.db, provider, logger: silent }, { olderThanMs: OLDER_THAN_MS });

  /**
   * A payment as a crashed ProcessPayment leaves it: `pending → processing` committed (as its first
   * transaction does), then — with `chargedBy` — the provider charged under the payment id, and the
   * answer was never recorded. `stale` puts its last update 10 minutes back.
   */
  async function aStuckPayment(
    opts: { chargedBy?: PaymentProvider; card?: string; stale?: boolean } = {},
  ): Promise<{ id: string; charge?: ChargeOutcome }> {
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const id = payment!.id;
    await t.server.db.transaction().execute(async (trx) => {
      const row = await findPayment(trx, id, { forUpdate: true });
      await transitionPayment(trx, row!, "processing", {
        actor: `user:${alice.id}`,
        reason: "processing requested",
      });
    });
    const charge = await opts.chargedBy?.charge({
      idempotencyKey: id,
      paymentId: id,
      amount: 1999n,
      currency: "EUR",
      method: "card",
      card: aCard(opts.card ?? TEST_CARDS.succeeds),
    });
    if (opts.stale ?? true) await makeStale(id);
    return charge === undefined ? { id } : { id, charge };
  }

  const makeStale = (id: string) =>
    sql`update payments set updated_at = now() - interval '10 minutes' where id = ${id}`.execute(t.server.db);

  const paymentOf = async (id: string) => (await t.client.getPayment({ paymentId: id }, alice.as())).payment!;

  const rowOf = (id: string) =>
    t.server.db.selectFrom("payments").selectAll().where("id", "=", id).executeTakeFirstOrThrow();

  /** The events of one type the outbox holds for a payment (published or not). */
  async function outboxed<Desc extends DescMessage & { typeName: string }>(
    schema: Desc,
    paymentId: string,
  ): Promise<MessageShape<Desc>[]> {
    const { rows } = await sql<{ payload: Buffer }>`
      select payload from kit_outbox where subject = ${schema.typeName} order by created_at, id`.execute(
      t.server.db,
    );
    return rows
      .map((r) => fromBinary(schema, new Uint8Array(r.payload)))
      .filter((e) => (e as { paymentId?: string }).paymentId === paymentId);
  }

  const nothing: SweepResult = { completed: 0, failed: 0, pending: 0, changed: 0, unexplained: 0, error: 0 };

  it("completes a payment the provider charged before the crash, appending PaymentSucceeded", async () => {
    const provider = aProvider();
    const { id, charge } = await aStuckPayment({ chargedBy: provider });
    expect(charge?.status).toBe("succeeded");

    expect(await sweep(provider)).toEqual({ ...nothing, completed: 1 });

    const payment = await paymentOf(id);
    expect(payment.status).toBe(PaymentStatus.COMPLETED);
    expect(payment.transitions.map((tr) => [tr.fromStatus, tr.toStatus, tr.actor])).toEqual([
      [PaymentStatus.PENDING, PaymentStatus.PROCESSING, `user:${alice.id}`],
      [PaymentStatus.PROCESSING, PaymentStatus.COMPLETED, RECONCILIATION_ACTOR],
    ]);
    expect((await rowOf(id)).provider_payment_id).toBe(charge!.providerPaymentId);
    const events = await outboxed(PaymentSucceededSchema, id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ paymentId: id, amount: 1999n, currency: "EUR" });

    // Settled: the next sweep does not look at it again.
    expect(await sweep(provider)).toEqual(nothing);
    expect((await paymentOf(id)).transitions).toHaveLength(2);
  });

  it("fails a payment the provider declined, with the provider's code, appending PaymentFailed", async () => {
    const provider = aProvider();
    const { id, charge } = await aStuckPayment({ chargedBy: provider, card: TEST_CARDS.declined });
    expect(charge?.status).toBe("failed");

    expect(await sweep(provider)).toEqual({ ...nothing, failed: 1 });

    const payment = await paymentOf(id);
    expect(payment).toMatchObject({
      status: PaymentStatus.FAILED,
      failureCode: "card_declined",
      failureMessage: "Your card was declined.",
    });
    expect(payment.transitions.at(-1)).toMatchObject({
      fromStatus: PaymentStatus.PROCESSING,
      toStatus: PaymentStatus.FAILED,
      actor: RECONCILIATION_ACTOR,
    });
    const events = await outboxed(PaymentFailedSchema, id);
    expect(events.map((e) => e.failureCode)).toEqual(["card_declined"]);
  });

  it("fails a payment whose charge never reached the provider as provider_no_record, charging nothing", async () => {
    const provider = aProvider();
    const { id } = await aStuckPayment();

    expect(await sweep(provider)).toEqual({ ...nothing, failed: 1 });

    const payment = await paymentOf(id);
    expect(payment).toMatchObject({ status: PaymentStatus.FAILED, failureCode: NO_PROVIDER_RECORD });
    expect(payment.failureMessage).toMatch(/no money was taken/i);
    expect(payment.transitions.at(-1)).toMatchObject({
      toStatus: PaymentStatus.FAILED,
      actor: RECONCILIATION_ACTOR,
    });
    expect((await rowOf(id)).provider_payment_id).toBeNull();
    // Not charged again behind the customer's back.
    expect(await provider.lookupCharge(id)).toEqual({ status: "not_found" });
    const events = await outboxed(PaymentFailedSchema, id);
    expect(events.map((e) => e.failureCode)).toEqual([NO_PROVIDER_RECORD]);
  });

  it("leaves a payment younger than the threshold alone: it may still be in flight", async () => {
    const provider = aProvider();
    const { id } = await aStuckPayment({ chargedBy: provider, stale: false });

    expect(await sweep(provider)).toEqual(nothing);
    const payment = await paymentOf(id);
    expect(payment.status).toBe(PaymentStatus.PROCESSING);
    expect(payment.transitions).toHaveLength(1);
    expect(await outboxed(PaymentSucceededSchema, id)).toEqual([]);

    // Only its age kept it: once old enough, it is settled.
    await makeStale(id);
    expect(await sweep(provider)).toEqual({ ...nothing, completed: 1 });
    expect((await paymentOf(id)).status).toBe(PaymentStatus.COMPLETED);
  });

  it("leaves a charge still settling at the provider to its webhook, recording the provider id the webhook needs", async () => {
    const provider = aProvider();
    const { id, charge } = await aStuckPayment({ chargedBy: provider, card: TEST_CARDS.asynchronous });
    expect(charge?.status).toBe("pending");

    expect(await sweep(provider)).toEqual({ ...nothing, pending: 1 });
    expect(await paymentOf(id)).toMatchObject({ status: PaymentStatus.PROCESSING });
    expect((await paymentOf(id)).transitions).toHaveLength(1);
    expect((await rowOf(id)).provider_payment_id).toBe(charge!.providerPaymentId);

    // The provider's webhook, which finds the payment by that id, now settles it.
    const { body, signature } = signed(
      aProviderEvent("payment_intent.succeeded", {
        id: charge!.providerPaymentId,
        metadata: { payment_id: id },
      }),
    );
    await t.client.handleProviderWebhook(
      { rawBody: { contentType: "application/json", data: body } },
      { headers: { [SIGNATURE_HEADER]: signature } },
    );
    const settled = await eventually(
      () => paymentOf(id),
      (p) => p.status === PaymentStatus.COMPLETED,
    );
    expect(settled.transitions.at(-1)).toMatchObject({ actor: "provider" });
    expect(await outboxed(PaymentSucceededSchema, id)).toHaveLength(1);
  });

  /**
   * An asynchronous payment whose `pending` answer ProcessPayment recorded (with the provider id),
   * which has since settled at the provider; its webhook is late. Both the webhook and the sweep may
   * now settle it.
   */
  async function aSettledAsynchronousPayment(provider: PaymentProvider) {
    const { id, charge } = await aStuckPayment({
      chargedBy: provider,
      card: TEST_CARDS.asynchronous,
      stale: false,
    });
    await t.server.db.transaction().execute(async (trx) => {
      await updatePayment(trx, id, { provider_payment_id: charge!.providerPaymentId });
    });
    await makeStale(id);
    await eventually(
      () => provider.lookupCharge(id),
      (found) => found.status === "succeeded",
    );
    return { id, providerPaymentId: charge!.providerPaymentId };
  }

  it("makes one transition when a webhook settles the payment while the sweep is at it", async () => {
    const provider = aProvider(0);
    const { id, providerPaymentId } = await aSettledAsynchronousPayment(provider);
    const event = aProviderEvent("payment_intent.succeeded", {
      id: providerPaymentId,
      metadata: { payment_id: id },
    });
    const stored: ProviderEventRow = {
      event_id: event.id,
      type: event.type,
      payload: event,
      received_at: new Date(),
      processed_at: null,
      outcome: null,
      attempts: 0,
      next_attempt_at: new Date(),
      last_error: null,
    };

    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let applied!: () => void;
    const appliedYet = new Promise<void>((resolve) => (applied = resolve));
    // The webhook worker's transaction: it has locked and settled the payment, not committed yet.
    const webhook = t.server.db.transaction().execute(async (trx) => {
      const outcome = await applyProviderEvent(trx, stored);
      applied();
      await released;
      return outcome;
    });
    await appliedYet;
    const sweeping = sweep(provider);
    // The sweep has asked the provider (succeeded) and now waits for the payment's row lock.
    await eventually(
      async () =>
        (
          await sql<{ n: string }>`select count(*) as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`.execute(t.server.db)
        ).rows[0]?.n,
      (n) => n === "1",
    );
    release();
    expect(await webhook).toBe(`applied: payment ${id} completed`);
    expect(await sweeping).toEqual({ ...nothing, changed: 1 });

    const payment = await paymentOf(id);
    expect(payment.status).toBe(PaymentStatus.COMPLETED);
    expect(payment.transitions.map((tr) => [tr.toStatus, tr.actor])).toEqual([
      [PaymentStatus.PROCESSING, `user:${alice.id}`],
      [PaymentStatus.COMPLETED, "provider"],
    ]);
    expect(await outboxed(PaymentSucceededSchema, id)).toHaveLength(1);
  });

  it("makes one transition when the webhook comes after the sweep settled the payment", async () => {
    const provider = aProvider(0);
    const { id, providerPaymentId } = await aSettledAsynchronousPayment(provider);
    expect(await sweep(provider)).toEqual({ ...nothing, completed: 1 });

    const event = aProviderEvent("payment_intent.succeeded", {
      id: providerPaymentId,
      metadata: { payment_id: id },
    });
    const { body, signature } = signed(event);
    await t.client.handleProviderWebhook(
      { rawBody: { contentType: "application/json", data: body } },
      { headers: { [SIGNATURE_HEADER]: signature } },
    );
    const stored = await eventually(
      () =>
        t.server.db
          .selectFrom("provider_events")
          .select("outcome")
          .where("event_id", "=", event.id)
          .executeTakeFirst(),
      (row) => row?.outcome != null,
    );
    expect(stored?.outcome).toBe(`ignored: payment ${id} is already completed`);
    const payment = await paymentOf(id);
    expect(payment.transitions.map((tr) => [tr.toStatus, tr.actor])).toEqual([
      [PaymentStatus.PROCESSING, `user:${alice.id}`],
      [PaymentStatus.COMPLETED, RECONCILIATION_ACTOR],
    ]);
    expect(await outboxed(PaymentSucceededSchema, id)).toHaveLength(1);
  });

  it("settles each payment once when two replicas sweep at the same time", async () => {
    const provider = aProvider();
    const stuck = [];
    for (let i = 0; i < 5; i++) stuck.push(await aStuckPayment({ chargedBy: provider }));

    const [a, b] = await Promise.all([sweep(provider), sweep(provider)]);
    expect(a.completed + b.completed).toBe(5);
    expect(a.failed + b.failed + a.unexplained + b.unexplained + a.error + b.error).toBe(0);
    for (const { id } of stuck) {
      const payment = await paymentOf(id);
      expect(payment.status).toBe(PaymentStatus.COMPLETED);
      expect(payment.transitions).toHaveLength(2);
      expect(await outboxed(PaymentSucceededSchema, id)).toHaveLength(1);
    }
  });

  it("leaves for review a payment with a provider id that the provider has no record of", async () => {
    const provider = aProvider();
    const { id } = await aStuckPayment({ stale: false });
    // The provider answered before (its id is recorded), but this provider does not know the charge:
    // in the simulation, another replica's provider or one restarted since.
    await t.server.db.transaction().execute(async (trx) => {
      await updatePayment(trx, id, { provider_payment_id: "pi_unknown_to_this_provider" });
    });
    await makeStale(id);

    expect(await sweep(provider)).toEqual({ ...nothing, unexplained: 1 });
    expect(await paymentOf(id)).toMatchObject({ status: PaymentStatus.PROCESSING });
    expect((await paymentOf(id)).transitions).toHaveLength(1);
    // Out of the way of the other tests' sweeps.
    await sql`update payments set updated_at = now() where id = ${id}`.execute(t.server.db);
  });
});

describe("the service's reconciliation schedule", () => {
  let t: TestPayments;

  beforeAll(async () => {
    t = await startTestPayments({ env: { PAYMENTS_RECONCILE_INTERVAL_MS: "1000" } });
  });

  afterAll(async () => {
    // Resolves only once the sweep loop has stopped.
    await t?.close();
  });

  it("settles a stuck payment by itself and publishes its event", async () => {
    const alice = await t.user();
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const id = payment!.id;
    // The crash before the charge: `processing` committed, the provider never called.
    await t.server.db.transaction().execute(async (trx) => {
      const row = await findPayment(trx, id, { forUpdate: true });
      await transitionPayment(trx, row!, "processing", {
        actor: `user:${alice.id}`,
        reason: "processing requested",
      });
    });
    await sql`update payments set updated_at = now() - interval '10 minutes' where id = ${id}`.execute(
      t.server.db,
    );

    const failed = await eventually(
      async () => (await t.client.getPayment({ paymentId: id }, alice.as())).payment!,
      (p) => p.status === PaymentStatus.FAILED,
    );
    expect(failed.failureCode).toBe(NO_PROVIDER_RECORD);
    expect(failed.transitions.at(-1)?.actor).toBe(RECONCILIATION_ACTOR);
    const [published] = await waitForEvents(t.nats.url, PaymentFailedSchema, (e) => e.paymentId === id);
    expect(published!.event.failureCode).toBe(NO_PROVIDER_RECORD);
  });
});
