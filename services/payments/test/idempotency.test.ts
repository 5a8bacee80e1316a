import { create, toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { DomainError, domainErrorToConnectError } from "@zero/kit/errors";
import { createLogger } from "@zero/kit/log";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { PaymentCreatedSchema } from "@zero/proto/zero/payments/v1/events_pb";
import {
  CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
  PaymentStatus,
} from "@zero/proto/zero/payments/v1/payments_pb";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdempotency, fingerprintOf } from "../src/idempotency.js";
import { REPLAYED_HEADER } from "../src/payment-service.js";
import {
  aCard,
  aPayment,
  newKey,
  readPaymentStream,
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
  alice = await t.user();
});

afterAll(async () => {
  await t?.close();
});

const countPayments = async (userId: string): Promise<number> =>
  Number(
    (
      await t.server.db
        .selectFrom("payments")
        .select((eb) => eb.fn.countAll<string>().as("n"))
        .where("user_id", "=", userId)
        .executeTakeFirstOrThrow()
    ).n,
  );

describe("Idempotency-Key", () => {
  it("replays the first result to a retry: same payment, one row, one event, marked as replayed", async () => {
    const key = newKey();
    const headers: Record<string, string>[] = [];
    const call = () =>
      t.client.createPayment(aPayment({ metadata: { b: "2", a: "1" } }), {
        ...alice.as(key),
        onHeader: (h: Headers) => headers.push(Object.fromEntries(h.entries())),
      });
    const first = await call();
    const second = await call();
    expect(second.payment).toEqual(first.payment);
    expect(headers[0]?.[REPLAYED_HEADER]).toBeUndefined();
    expect(headers[1]?.[REPLAYED_HEADER]).toBe("true");
    expect(await countPayments(alice.id)).toBe(1);
    await waitForEvents(t.nats.url, PaymentCreatedSchema, (e) => e.paymentId === first.payment!.id);
    const events = (await readPaymentStream(t.nats.url)).filter(
      (m) => m.subject === PaymentCreatedSchema.typeName,
    );
    expect(events).toHaveLength(1);
  });

  it("refuses the same key with different parameters: INVALID_ARGUMENT, reason IDEMPOTENCY_KEY_REUSED, HTTP 422", async () => {
    const key = newKey();
    await t.client.createPayment(aPayment({ amount: 1000n }), alice.as(key));
    const error = await rpcError(t.client.createPayment(aPayment({ amount: 2000n }), alice.as(key)));
    expect(error.code).toBe(Code.InvalidArgument);
    const info = error.findDetails(ErrorInfoSchema)[0];
    expect(info?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(info?.metadata).toEqual({ http_status: "422" });
    // On another method too.
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    const other = await rpcError(t.client.cancelPayment({ paymentId: payment!.id }, alice.as(key)));
    expect(other.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(other.rawMessage).toMatch(/already used for CreatePayment/);
  });

  it("scopes keys per caller: two users with the same key get two payments", async () => {
    const key = newKey();
    const bob = await t.user();
    const carol = await t.user();
    const a = await t.client.createPayment(aPayment(), bob.as(key));
    const b = await t.client.createPayment(aPayment(), carol.as(key));
    expect(a.payment?.id).not.toBe(b.payment?.id);
    expect(b.payment?.userId).toBe(carol.id);
  });

  it("creates exactly one payment for 100 concurrent identical requests, all answering it", async () => {
    const dave = await t.user();
    const key = newKey();
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => t.client.createPayment(aPayment({ amount: 4200n }), dave.as(key))),
    );
    const failures = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
    expect(failures).toEqual([]);
    const ids = new Set(results.map((r) => (r.status === "fulfilled" ? r.value.payment!.id : "")));
    expect(ids.size).toBe(1);
    expect(await countPayments(dave.id)).toBe(1);
  });

  it("charges once for concurrent identical ProcessPayment calls", async () => {
    const erin = await t.user();
    const { payment } = await t.client.createPayment(aPayment(), erin.as());
    const key = newKey();
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        t.client.processPayment({ paymentId: payment!.id, card: aCard() }, erin.as(key)),
      ),
    );
    expect(new Set(results.map((r) => r.payment!.status))).toEqual(new Set([PaymentStatus.COMPLETED]));
    const transitions = await t.server.db
      .selectFrom("payment_transitions")
      .selectAll()
      .where("payment_id", "=", payment!.id)
      .execute();
    expect(transitions).toHaveLength(2);
  });

  it("does not store invalid requests: the fixed request may reuse the key", async () => {
    const key = newKey();
    const error = await rpcError(t.client.createPayment(aPayment({ currency: "NOPE" }), alice.as(key)));
    expect(error.code).toBe(Code.InvalidArgument);
    const { payment } = await t.client.createPayment(aPayment({ currency: "USD" }), alice.as(key));
    expect(payment?.currency).toBe("USD");
  });

  it("stores and replays a domain error of the first execution", async () => {
    const { payment } = await t.client.createPayment(aPayment(), alice.as());
    await t.client.processPayment({ paymentId: payment!.id, card: aCard() }, alice.as());
    const key = newKey();
    const first = await rpcError(t.client.cancelPayment({ paymentId: payment!.id }, alice.as(key)));
    expect(first.code).toBe(Code.FailedPrecondition);
    const again = await rpcError(t.client.cancelPayment({ paymentId: payment!.id }, alice.as(key)));
    expect(again.code).toBe(Code.FailedPrecondition);
    expect(again.rawMessage).toBe(first.rawMessage);
  });

  it("refuses malformed keys", async () => {
    for (const key of ["has space", "x".repeat(256), "tab\tkey"]) {
      const error = await rpcError(t.client.createPayment(aPayment(), alice.as(key)));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_INVALID");
    }
  });

  it("forgets a key after 24 hours", async () => {
    const key = newKey();
    await t.client.createPayment(aPayment({ amount: 100n }), alice.as(key));
    await sql`update idempotency_keys set created_at = now() - interval '25 hours' where key = ${key}`.execute(
      t.server.db,
    );
    const { payment } = await t.client.createPayment(aPayment({ amount: 200n }), alice.as(key));
    expect(payment?.amount).toBe(200n);
    await sql`update idempotency_keys set created_at = now() - interval '25 hours' where key = ${key}`.execute(
      t.server.db,
    );
    const idempotency = createIdempotency({
      db: t.server.db,
      logger: createLogger("test", { level: "silent" }),
    });
    expect(await idempotency.prune()).toBeGreaterThanOrEqual(1);
  });

  it("lets a retry take over the key of a crashed execution once its lease ran out", async () => {
    const frank = await t.user();
    const { payment } = await t.client.createPayment(aPayment(), frank.as());
    const crashed = async (key: string, method: string, input: unknown) =>
      t.server.db
        .insertInto("idempotency_keys")
        .values({
          scope: frank.id,
          key,
          method,
          fingerprint: fingerprintOf(method, input),
          state: "in_progress",
          lock_token: "00000000-0000-4000-8000-000000000000",
          locked_until: sql<Date>`now() - interval '1 second'`,
        })
        .execute();
    // A multi-transaction call (ProcessPayment), claimed and never completed.
    const processKey = newKey();
    const card = aCard();
    await crashed(processKey, "ProcessPayment", {
      paymentId: payment!.id,
      card: { brand: "visa", last4: "4242", expMonth: card.expMonth, expYear: card.expYear },
    });
    const { payment: processed } = await t.client.processPayment(
      { paymentId: payment!.id, card },
      frank.as(processKey),
    );
    expect(processed?.status).toBe(PaymentStatus.COMPLETED);
    // A one-transaction call (CreatePayment) whose key was left in progress.
    const createKey = newKey();
    const request = aPayment({ amount: 777n });
    await crashed(createKey, "CreatePayment", toJson(CreatePaymentRequestSchema, request));
    const { payment: created } = await t.client.createPayment(request, frank.as(createKey));
    expect(created?.amount).toBe(777n);
    expect(await countPayments(frank.id)).toBe(2);
  });
});

describe("a duplicate arriving while the first call runs", () => {
  const logger = createLogger("test", { level: "silent" });
  const call = (key: string) => ({
    scope: "scope-a",
    key,
    method: "CreatePayment",
    fingerprint: { n: 1 },
    response: CreatePaymentResponseSchema,
  });

  it("waits for the first result and gets it", async () => {
    const idempotency = createIdempotency({ db: t.server.db, logger, waitMs: 10_000 });
    const key = newKey();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let claimed!: () => void;
    const running = new Promise<void>((r) => (claimed = r));
    const first = idempotency.run(call(key), async () => {
      claimed(); // the key is claimed: a duplicate now finds it in progress
      await gate;
      return create(CreatePaymentResponseSchema, { payment: { id: "first" } });
    });
    await running;
    const second = idempotency.run(call(key), () => Promise.reject(new Error("must not execute")));
    setTimeout(release, 200);
    expect((await first).response.payment?.id).toBe("first");
    const replay = await second;
    expect(replay).toMatchObject({ replayed: true });
    expect(replay.response.payment?.id).toBe("first");
  });

  it("answers 409 (ABORTED, IDEMPOTENCY_KEY_IN_USE) when the first call takes longer than the wait", async () => {
    const idempotency = createIdempotency({ db: t.server.db, logger, waitMs: 200 });
    const key = newKey();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let claimed!: () => void;
    const running = new Promise<void>((r) => (claimed = r));
    const first = idempotency.run(call(key), async () => {
      claimed(); // the key is claimed: a duplicate now finds it in progress
      await gate;
      return create(CreatePaymentResponseSchema, {});
    });
    await running;
    const thrown = await idempotency
      .run(call(key), () => Promise.reject(new Error("must not execute")))
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(DomainError);
    // As the kit's error interceptor sends it.
    const error = domainErrorToConnectError(thrown as DomainError);
    expect(error.code).toBe(Code.Aborted);
    expect(error.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "IDEMPOTENCY_KEY_IN_USE",
      metadata: { http_status: "409" },
    });
    release();
    await first;
  });

  it("in one transaction: a duplicate waits on the claim and replays, or answers 409 after the wait", async () => {
    for (const waitMs of [10_000, 200]) {
      const idempotency = createIdempotency({ db: t.server.db, logger, waitMs });
      const key = newKey();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let claimed!: () => void;
      const running = new Promise<void>((r) => (claimed = r));
      const first = idempotency.runInTransaction(call(key), async () => {
        claimed(); // the claim is in: duplicates now wait on its row lock
        await gate;
        return create(CreatePaymentResponseSchema, { payment: { id: "first" } });
      });
      await running;
      const second = idempotency
        .runInTransaction(call(key), () => Promise.reject(new Error("must not execute")))
        .catch((e: unknown) => e);
      if (waitMs === 200) {
        // The first holds its claim until the duplicate has given up.
        const outcome = await second;
        expect(outcome).toBeInstanceOf(DomainError);
        expect(outcome).toMatchObject({ code: "aborted", reason: "IDEMPOTENCY_KEY_IN_USE" });
        release();
        await first;
      } else {
        setTimeout(release, 300);
        expect((await first).response.payment?.id).toBe("first");
        expect(await second).toMatchObject({ replayed: true, response: { payment: { id: "first" } } });
      }
    }
  });

  it("releases the key when the first call fails for a transient reason", async () => {
    const idempotency = createIdempotency({ db: t.server.db, logger });
    const key = newKey();
    await expect(
      idempotency.run(call(key), () => Promise.reject(new Error("database hiccup"))),
    ).rejects.toThrow("hiccup");
    const retry = await idempotency.run(call(key), () =>
      Promise.resolve(create(CreatePaymentResponseSchema, { payment: { id: "retried" } })),
    );
    expect(retry).toMatchObject({ replayed: false });
  });
});
