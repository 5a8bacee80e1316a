import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { startTelemetry, type Telemetry } from "@zero/kit/telemetry";
import {
  EmailVerifiedSchema,
  UserDeletedSchema,
  UserRegisteredSchema,
} from "@zero/proto/zero/auth/v1/events_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import {
  PaymentFailedSchema,
  PaymentRefundedSchema,
  PaymentSucceededSchema,
} from "@zero/proto/zero/payments/v1/events_pb";
import { randomBytes, randomUUID } from "node:crypto";
import { uuidv7 } from "uuidv7";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aUserRegistered, startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

// Telemetry first: the service's spans must reach the in-memory exporter.
const spans = new InMemorySpanExporter();
const telemetry: Telemetry = startTelemetry({
  serviceName: "notifications-test",
  spanProcessors: [new SimpleSpanProcessor(spans)],
});
let n: TestNotifications;

beforeAll(async () => {
  n = await startTestNotifications();
});

afterAll(async () => {
  await n?.close();
  await telemetry.shutdown();
});

const mailsTo = (to: string) => n.smtp.mails.filter((m) => m.to.includes(to));

function aPaymentSucceeded(
  overrides: { userId?: string; receiptEmail?: string; amount?: bigint; currency?: string } = {},
) {
  return create(PaymentSucceededSchema, {
    paymentId: uuidv7(),
    reference: `pay_${randomUUID().slice(0, 8)}`,
    userId: uuidv7(),
    amount: 1999n,
    currency: "EUR",
    receiptEmail: `buyer-${randomUUID()}@example.com`,
    succeedTime: timestampNow(),
    ...overrides,
  });
}

async function deadLetterFor(eventId: string) {
  return waitFor(`a dead letter for ${eventId}`, async () => {
    const { deadLetters } = await n.admin.listDeadLetters({ pageSize: 100, includeResolved: true });
    return deadLetters.find((d) => d.eventId === eventId);
  });
}

describe("UserRegistered", () => {
  it("sends one welcome mail per event, however often the event is delivered", async () => {
    const event = aUserRegistered({ firstName: "Grace" });
    const eventId = await n.publish(UserRegisteredSchema, event);
    // The same event again under another NATS message id: JetStream cannot drop it, the inbox must.
    await n.publish(UserRegisteredSchema, event, { eventId, msgId: uuidv7() });
    await waitFor("the welcome mail", () => mailsTo(event.email).length >= 1);
    // Both copies handled (acked) and the delivery worker idle again before counting.
    await n.consumerIdle("ZERO_AUTH", "notifications-auth-events");
    await waitFor("no pending delivery", async () => {
      const pending = await n.server.db
        .selectFrom("deliveries")
        .select("id")
        .where("status", "in", ["queued", "deferred"])
        .execute();
      return pending.length === 0;
    });
    const mails = mailsTo(event.email);
    expect(mails).toHaveLength(1);
    expect(mails[0]?.subject).toBe("Welcome to Zero, Grace");
    const { deliveries } = await n.admin.listDeliveries({ userId: event.userId });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]?.source).toBe("event:zero.auth.v1.UserRegistered");
  });

  it("continues the event's trace: the consumer span, then the email send span as its child", async () => {
    const traceId = randomBytes(16).toString("hex");
    const event = aUserRegistered();
    const eventId = await n.publish(UserRegisteredSchema, event, {
      headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
    });
    await waitFor("the welcome mail", () => mailsTo(event.email).length >= 1);
    const send = await waitFor("the send span", () =>
      spans.getFinishedSpans().find((s) => s.name === "send email" && s.spanContext().traceId === traceId),
    );
    const consume = spans
      .getFinishedSpans()
      .find((s) => s.name === "process zero.auth.v1.UserRegistered" && s.spanContext().traceId === traceId);
    expect(consume?.attributes["messaging.message.id"]).toBe(eventId);
    expect(send.parentSpanContext?.spanId).toBe(consume?.spanContext().spanId);
    expect(send.attributes["email.message_id"]).toMatch(/@notifications\.zero\.local>$/);
    // No address in span attributes.
    expect(JSON.stringify(send.attributes)).not.toContain(event.email);
  });
});

describe("payment events", () => {
  it("mail the receipt address with the formatted amount", async () => {
    const event = aPaymentSucceeded({ amount: 123456n, currency: "EUR" });
    await n.publish(PaymentSucceededSchema, event);
    const [mail] = await waitFor("the confirmation", () => {
      const mails = mailsTo(event.receiptEmail);
      return mails.length > 0 ? mails : undefined;
    });
    expect(mail?.subject).toBe(`Payment Confirmation ${event.reference}`);
    // The € is quoted-printable in the raw message.
    expect(mail?.raw).toContain("=E2=82=AC1,234.56");
  });

  it("fall back to the address book when the event has no receipt address", async () => {
    const user = aUserRegistered({ firstName: "Ada" });
    await n.publish(UserRegisteredSchema, user);
    await waitFor("the welcome mail", () => mailsTo(user.email).length >= 1);
    const refund = create(PaymentRefundedSchema, {
      paymentId: uuidv7(),
      reference: "pay_refund",
      userId: user.userId,
      refundId: uuidv7(),
      refundAmount: 500n,
      amountRefunded: 500n,
      amount: 1000n,
      currency: "USD",
      fullyRefunded: false,
      refundTime: timestampNow(),
    });
    await n.publish(PaymentRefundedSchema, refund);
    const mail = await waitFor("the refund mail", () =>
      mailsTo(user.email).find((m) => m.subject.startsWith("Refund")),
    );
    expect(mail.subject).toBe("Refund of $5.00 for pay_refund");
    expect(mail.raw).toContain("Hello Ada");
    expect(mail.raw).not.toContain("fully refunded");
  });

  it("dead-letter a poison event after the bounded retries while the rest keep flowing; an admin replays it", async () => {
    // No receipt address and a user nobody registered: no recipient, however often it is retried.
    const userId = uuidv7();
    const poison = create(PaymentFailedSchema, {
      paymentId: uuidv7(),
      reference: "pay_poison",
      userId,
      amount: 700n,
      currency: "EUR",
      failureCode: "card_declined",
      failureMessage: "Your card was declined.",
      failTime: timestampNow(),
    });
    const poisonId = await n.publish(PaymentFailedSchema, poison);
    const healthy = aPaymentSucceeded();
    await n.publish(PaymentSucceededSchema, healthy);

    await waitFor("the healthy event's mail", () => mailsTo(healthy.receiptEmail).length === 1);
    const dead = await deadLetterFor(poisonId);
    expect(dead).toMatchObject({
      consumer: "notifications-payment-events",
      subject: "zero.payments.v1.PaymentFailed",
      deliveries: 3, // EVENT_MAX_DELIVER in these tests
      replays: 0,
    });
    expect(dead.error).toContain("no recipient");
    expect(dead.resolveTime).toBeUndefined();

    // Still failing: the replay says why and the dead letter stays open.
    const failed = await n.admin.replayDeadLetter({ deadLetterId: dead.id });
    expect(failed).toMatchObject({ resolved: false });
    expect(failed.error).toContain("no recipient");

    // The user shows up; the replay now queues the mail, once.
    const user = aUserRegistered({ userId, firstName: "Poe" });
    await n.publish(UserRegisteredSchema, user);
    await waitFor("the welcome mail", () => mailsTo(user.email).length >= 1);
    const replayed = await n.admin.replayDeadLetter({ deadLetterId: dead.id });
    expect(replayed.resolved).toBe(true);
    expect(replayed.deadLetter?.replays).toBe(2);
    expect(replayed.deadLetter?.resolveTime).toBeDefined();
    const mail = await waitFor("the failure mail", () =>
      mailsTo(user.email).find((m) => m.subject.includes("pay_poison")),
    );
    expect(mail.subject).toBe("Payment Failed - Action Required (pay_poison)");
    expect(mail.raw).toContain("Your card was declined.");

    const again = await n.admin.replayDeadLetter({ deadLetterId: dead.id });
    expect(again.resolved).toBe(true);
    const open = await n.admin.listDeadLetters({});
    expect(open.deadLetters.map((d) => d.id)).not.toContain(dead.id);
    await new Promise((r) => setTimeout(r, 300));
    expect(mailsTo(user.email).filter((m) => m.subject.includes("pay_poison"))).toHaveLength(1);
  });

  it("dead-letter an event that cannot be decoded at once", async () => {
    const eventId = await n.publish(PaymentSucceededSchema, aPaymentSucceeded(), {
      data: new Uint8Array([0xff, 0xff, 0xff]),
    });
    const dead = await deadLetterFor(eventId);
    expect(dead.deliveries).toBe(1);
    expect(dead.error).toContain("cannot decode");
    const replay = await n.admin.replayDeadLetter({ deadLetterId: dead.id });
    expect(replay.resolved).toBe(false);
  });

  it("ReplayDeadLetter answers not_found for an unknown id", async () => {
    const error = await n.admin
      .replayDeadLetter({ deadLetterId: randomUUID() })
      .catch((e: unknown) => ConnectError.from(e));
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });
});

describe("privacy", () => {
  it("follows a verified address change", async () => {
    const user = aUserRegistered();
    await n.publish(UserRegisteredSchema, user);
    await waitFor("the welcome mail", () => mailsTo(user.email).length >= 1);
    const newEmail = `moved-${randomUUID()}@example.com`;
    await n.publish(
      EmailVerifiedSchema,
      create(EmailVerifiedSchema, { userId: user.userId, email: newEmail, verifyTime: timestampNow() }),
    );
    await waitFor("the address book update", async () => {
      const row = await n.server.db
        .selectFrom("recipients")
        .select("email")
        .where("user_id", "=", user.userId)
        .executeTakeFirst();
      return row?.email === newEmail;
    });
    await n.publish(PaymentSucceededSchema, aPaymentSucceeded({ userId: user.userId, receiptEmail: "" }));
    await waitFor("the mail at the new address", () => mailsTo(newEmail).length === 1);
  });

  it("exports a user's data and erases it on UserDeleted; later events about them send nothing", async () => {
    const user = aUserRegistered({ firstName: "Eve" });
    await n.publish(UserRegisteredSchema, user);
    await waitFor("the welcome mail", () => mailsTo(user.email).length >= 1);

    const exported = await n.privacy.exportPersonalData({ userId: user.userId });
    expect(exported.service).toBe("notifications");
    expect(exported.data).toMatchObject({
      contact: { email: user.email, firstName: "Eve" },
      emails: [expect.objectContaining({ template: "welcome", to: user.email, status: "sent" })],
    });
    expect((await n.privacy.exportPersonalData({ userId: uuidv7() })).data).toEqual({});

    await n.publish(
      UserDeletedSchema,
      create(UserDeletedSchema, { userId: user.userId, deleteTime: timestampNow() }),
    );
    await waitFor("the erasure", async () => {
      const row = await n.server.db
        .selectFrom("recipients")
        .select("email")
        .where("user_id", "=", user.userId)
        .executeTakeFirst();
      return row === undefined;
    });
    const rows = await n.server.db
      .selectFrom("deliveries")
      .selectAll()
      .where("recipient", "=", user.email)
      .execute();
    expect(rows).toHaveLength(0);
    expect((await n.privacy.exportPersonalData({ userId: user.userId })).data).toEqual({});
    const erased = await n.server.db
      .selectFrom("deliveries")
      .selectAll()
      .where("recipient", "=", "erased@invalid")
      .execute();
    expect(erased.length).toBeGreaterThan(0);
    expect(erased.every((d) => d.html_body === null && d.user_id === null)).toBe(true);

    // A payment event about the deleted user, handled late: no mail, not even to a receipt address.
    const late = aPaymentSucceeded({ userId: user.userId });
    await n.publish(PaymentSucceededSchema, late);
    const marker = aPaymentSucceeded();
    await n.publish(PaymentSucceededSchema, marker);
    await waitFor("a later event's mail", () => mailsTo(marker.receiptEmail).length === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(mailsTo(late.receiptEmail)).toHaveLength(0);
    const { deliveries } = await n.admin.listDeliveries({ recipient: late.receiptEmail });
    expect(deliveries).toHaveLength(0);
  });

  it("ExportPersonalData is internal and validates the user id", async () => {
    const adminToken = await n.issuer.user(uuidv7(), ["admin"]);
    const asAdmin = createClient(
      PersonalDataService,
      createConnectTransport({
        baseUrl: n.server.url,
        httpVersion: "1.1",
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${adminToken}`);
            return next(req);
          },
        ],
      }),
    );
    const refused = await asAdmin
      .exportPersonalData({ userId: uuidv7() })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.PermissionDenied);
    const invalid = await n.privacy
      .exportPersonalData({ userId: "not-a-uuid" })
      .catch((e: unknown) => ConnectError.from(e));
    expect((invalid as ConnectError).code).toBe(Code.InvalidArgument);
  });
});
