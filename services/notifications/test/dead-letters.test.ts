import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { UserDeletedSchema, UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { PaymentFailedSchema, PaymentSucceededSchema } from "@zero/proto/zero/payments/v1/events_pb";
import { randomUUID } from "node:crypto";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteDeadLettersOlderThan, upsertDeadLetter } from "../src/dead-letter-store.js";
import { aUserRegistered, startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

// Dead letters' lifecycle beyond list/replay (events.test.ts): deleted after their retention
// period, and deleted when the user they are about is erased.

let n: TestNotifications;

beforeAll(async () => {
  n = await startTestNotifications();
});

afterAll(async () => {
  await n?.close();
});

const DAY_MS = 24 * 3600_000;
const PAYMENT_DURABLE = "notifications-payment-events";
const mailsTo = (to: string) => n.smtp.mails.filter((m) => m.to.includes(to));

async function deadLetterIds(): Promise<string[]> {
  const rows = await n.server.db.selectFrom("dead_letters").select("id").execute();
  return rows.map((r) => r.id);
}

/** Writes a row as the intake would, dead-lettered `ageMs` ago. */
async function storedDeadLetter(ageMs: number, resolved = false): Promise<string> {
  const id = uuidv7();
  const eventId = uuidv7();
  await upsertDeadLetter(n.server.db, id, {
    dlqKey: `${PAYMENT_DURABLE}:${eventId}`,
    consumer: PAYMENT_DURABLE,
    subject: PaymentFailedSchema.typeName,
    eventId,
    error: "no recipient",
    deliveries: 5,
    payload: toBinary(PaymentFailedSchema, aPaymentFailed(uuidv7())),
    headers: { "ce-id": eventId },
    deadLetteredAt: new Date(Date.now() - ageMs),
  });
  if (resolved) {
    await n.server.db
      .updateTable("dead_letters")
      .set({ resolved_at: new Date() })
      .where("id", "=", id)
      .execute();
  }
  return id;
}

function aPaymentFailed(userId: string) {
  return create(PaymentFailedSchema, {
    paymentId: uuidv7(),
    reference: `pay_${randomUUID().slice(0, 8)}`,
    userId,
    amount: 700n,
    currency: "EUR",
    failureCode: "card_declined",
    failureMessage: "Your card was declined.",
    failTime: timestampNow(),
  });
}

/**
 * Publishes straight to ZERO_DLQ what the kit consumer publishes after its last attempt: how a
 * dead letter arrives that no handler failure here can produce (an undecodable payload, a
 * receipt address of someone else, one about a user erased meanwhile).
 */
async function injectDeadLetter<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc> | Uint8Array,
): Promise<string> {
  const eventId = uuidv7();
  const h = natsHeaders();
  h.set("ce-id", eventId);
  h.set("ce-type", schema.typeName);
  h.set("zero-dlq-error", "injected by the test");
  h.set("zero-dlq-consumer", PAYMENT_DURABLE);
  h.set("zero-dlq-deliveries", "5");
  h.set("zero-dlq-subject", schema.typeName);
  const data = message instanceof Uint8Array ? message : toBinary(schema, message);
  await jetstream(n.nc).publish(`dlq.${PAYMENT_DURABLE}.${schema.typeName}`, data, {
    headers: h,
    msgID: `${PAYMENT_DURABLE}:${eventId}`,
  });
  return eventId;
}

async function deadLetterFor(eventId: string) {
  return waitFor(`a dead letter for ${eventId}`, async () => {
    const { deadLetters } = await n.admin.listDeadLetters({ pageSize: 100, includeResolved: true });
    return deadLetters.find((d) => d.eventId === eventId);
  });
}

async function erase(userId: string): Promise<void> {
  await n.publish(UserDeletedSchema, create(UserDeletedSchema, { userId, deleteTime: timestampNow() }));
  await waitFor(`the erasure of ${userId}`, async () => {
    const row = await n.server.db
      .selectFrom("erased_users")
      .select("user_id")
      .where("user_id", "=", userId)
      .executeTakeFirst();
    return row !== undefined;
  });
}

describe("dead-letter retention", () => {
  it("deletes exactly the dead letters older than the retention period, resolved or not", async () => {
    // The service's own sweep at start-up must not race the one below for the same rows.
    await waitFor("the start-up sweep", () => n.logs().includes("no expired dead letters"));
    const before = await deadLetterIds();
    const old = [await storedDeadLetter(31 * DAY_MS), await storedDeadLetter(90 * DAY_MS, true)];
    const kept = [
      await storedDeadLetter(29 * DAY_MS),
      await storedDeadLetter(29 * DAY_MS, true),
      await storedDeadLetter(0),
    ];
    expect(await deleteDeadLettersOlderThan(n.server.db, 30 * DAY_MS)).toBe(old.length);
    const after = await deadLetterIds();
    expect(after.sort()).toEqual([...before, ...kept].sort());
    for (const id of old) expect(after).not.toContain(id);
  });

  it("runs in the service with DEAD_LETTER_RETENTION_DAYS", async () => {
    const expired = await storedDeadLetter(2 * DAY_MS);
    const recent = await storedDeadLetter(DAY_MS / 2);
    await n.restart({ DEAD_LETTER_RETENTION_DAYS: "1" });
    await waitFor("the expired dead letter to go", async () => !(await deadLetterIds()).includes(expired));
    expect(await deadLetterIds()).toContain(recent);
    expect(n.logs()).toContain("expired dead letters deleted");
  });
});

describe("dead letters on erasure (UserDeleted)", () => {
  it("deletes the dead letters about the erased user, keeps the others replayable, and drops late ones", async () => {
    // A never registered: their payment mail has no recipient, and a registration with a bad
    // address fails as well. Both are dead-lettered after the bounded retries.
    const a = uuidv7();
    const aPayment = await n.publish(PaymentFailedSchema, aPaymentFailed(a));
    const aRegistration = await n.publish(
      UserRegisteredSchema,
      aUserRegistered({ userId: a, email: "not-an-address" }),
    );
    // B is in the same situation and is not erased.
    const b = uuidv7();
    const bPayment = await n.publish(PaymentFailedSchema, aPaymentFailed(b));
    // C registered; a dead letter carries C's address as someone else's receipt address, another
    // one C's id in a payload that does not decode; a decoy address merely ends with C's.
    // (An address without C's id in it: the decoy must differ from C's address only by a prefix.)
    const c = aUserRegistered({ email: `carol-${randomUUID()}@example.com` });
    await n.publish(UserRegisteredSchema, c);
    await waitFor("C's welcome mail", () => mailsTo(c.email).length >= 1);
    const receipt = (email: string) =>
      create(PaymentSucceededSchema, {
        paymentId: uuidv7(),
        reference: "pay_receipt",
        userId: uuidv7(),
        amount: 100n,
        currency: "EUR",
        receiptEmail: email,
        succeedTime: timestampNow(),
      });
    const cReceipt = await injectDeadLetter(PaymentSucceededSchema, receipt(c.email));
    const cGarbage = await injectDeadLetter(
      PaymentSucceededSchema,
      new Uint8Array([0xff, 0xff, ...Buffer.from(`user ${c.userId}`)]),
    );
    const decoy = await injectDeadLetter(PaymentSucceededSchema, receipt(`jim${c.email}`));

    const about = {
      a: [await deadLetterFor(aPayment), await deadLetterFor(aRegistration)],
      b: await deadLetterFor(bPayment),
      c: [await deadLetterFor(cReceipt), await deadLetterFor(cGarbage)],
      decoy: await deadLetterFor(decoy),
    };
    expect(about.a.map((d) => d.error).join(" ")).toContain(a); // the error text names A too

    await erase(a);
    await erase(c.userId);

    const { deadLetters } = await n.admin.listDeadLetters({ pageSize: 100, includeResolved: true });
    const listed = deadLetters.map((d) => d.id);
    for (const gone of [...about.a, ...about.c]) expect(listed).not.toContain(gone.id);
    expect(listed).toContain(about.b.id);
    expect(listed).toContain(about.decoy.id);
    // Nothing stored mentions A or C any more, in the payload or the error.
    const rows = await n.server.db.selectFrom("dead_letters").selectAll().execute();
    for (const row of rows) {
      const mentions = row.id === about.decoy.id ? [a, c.userId] : [a, c.userId, c.email];
      for (const mention of mentions) {
        expect(Buffer.from(row.payload).includes(mention)).toBe(false);
        expect(row.error).not.toContain(mention);
      }
    }
    const bRow = rows.find((r) => r.id === about.b.id);
    expect(fromBinary(PaymentFailedSchema, bRow?.payload ?? new Uint8Array()).userId).toBe(b);

    // B's dead letter is intact: once B registers, its replay sends the mail.
    const bUser = aUserRegistered({ userId: b });
    await n.publish(UserRegisteredSchema, bUser);
    await waitFor("B's welcome mail", () => mailsTo(bUser.email).length >= 1);
    const replayed = await n.admin.replayDeadLetter({ deadLetterId: about.b.id });
    expect(replayed.resolved).toBe(true);
    await waitFor("B's payment mail", () =>
      mailsTo(bUser.email).find((m) => m.subject.includes("Payment Failed")),
    );

    // A dead letter about A arriving after the erasure (late, or ZERO_DLQ re-read) is not stored;
    // the marker behind it on the same intake shows the intake got past it.
    const late = await injectDeadLetter(PaymentFailedSchema, aPaymentFailed(a));
    const marker = await injectDeadLetter(PaymentFailedSchema, aPaymentFailed(uuidv7()));
    await deadLetterFor(marker);
    const after = await n.admin.listDeadLetters({ pageSize: 100, includeResolved: true });
    expect(after.deadLetters.map((d) => d.eventId)).not.toContain(late);
    expect(n.logs()).toContain("dead letter about an erased user dropped");
  });
});
