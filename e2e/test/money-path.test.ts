import { randomBytes, randomUUID } from "node:crypto";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { startAuthServer, type AuthServer } from "@zero/auth/auth-server";
import { loadConfig as loadAuthConfig } from "@zero/auth/config";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { createLogger } from "@zero/kit/log";
import { startTelemetry, type Telemetry } from "@zero/kit/telemetry";
import { loadConfig as loadNotificationsConfig } from "@zero/notifications/config";
import { startNotificationsServer, type NotificationsServer } from "@zero/notifications/notifications-server";
import { loadConfig as loadPaymentsConfig } from "@zero/payments/config";
import { startPaymentsServer, type PaymentsServer } from "@zero/payments/payments-server";
import { startMailReceiver, type MailReceiver } from "@zero/testkit/mail-receiver";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson } from "./platform.js";

// The seeds' event-driven money path, whole: a payment through the gateway, processed, an event
// on JetStream, a confirmation email at a real SMTP receiver — in one trace.

const spans = new InMemorySpanExporter();
let telemetry: Telemetry;
let nats: TestNats;
let redis: TestRedis;
let mail: MailReceiver;
const databases: TestDatabase[] = [];
let auth: AuthServer;
let payments: PaymentsServer;
let notifications: NotificationsServer;
let gateway: Gateway;

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: "e2e", spanProcessors: [new SimpleSpanProcessor(spans)] });
  const logger = createLogger("e2e", { level: "silent" });
  [nats, redis, mail] = await Promise.all([startNats(), startRedis(), startMailReceiver()]);
  const [authDb, paymentsDb, notificationsDb] = await Promise.all(
    ["e2e_auth", "e2e_payments", "e2e_notifications"].map((name) => createTestDatabase(name)),
  );
  databases.push(authDb!, paymentsDb!, notificationsDb!);
  const common = { PORT: "0", NATS_URL: nats.url, REDIS_URL: redis.url };
  auth = await startAuthServer({
    config: loadAuthConfig({
      ...common,
      DATABASE_URL: authDb!.url,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    }),
    logger,
    host: "127.0.0.1",
  });
  payments = await startPaymentsServer({
    config: loadPaymentsConfig({
      ...common,
      DATABASE_URL: paymentsDb!.url,
      AUTH_URL: auth.url,
      PAYMENTS_WEBHOOK_SECRETS: `whsec_${randomBytes(24).toString("hex")}`,
    }),
    logger,
    host: "127.0.0.1",
  });
  notifications = await startNotificationsServer({
    config: loadNotificationsConfig({
      ...common,
      DATABASE_URL: notificationsDb!.url,
      AUTH_URL: auth.url,
      SMTP_URL: mail.url,
      // The welcome mail takes the recipient's slot of seed 000's 1/minute limit; the payment
      // mail would be deferred a minute. The limit itself is tested in the notifications suite.
      RECIPIENT_INTERVAL_MS: "100",
      DELIVERY_POLL_MS: "50",
    }),
    logger,
    host: "127.0.0.1",
  });
  gateway = await startGateway({
    services: publicServices,
    upstreamUrls: { auth: auth.url, payments: payments.url, notifications: notifications.url },
    logger,
    host: "127.0.0.1",
    port: 0,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  for (const server of [notifications, payments, auth]) await server?.close(1000);
  await Promise.all([nats?.stop(), redis?.stop(), mail?.stop()]);
  await Promise.all(databases.map((db) => db.drop()));
  await telemetry?.shutdown();
});

async function eventually<T>(check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the money path", () => {
  test("POST a payment through the gateway, process it, the email arrives — one trace from the gateway span to the email send span", async () => {
    const reg = aRegistration();
    expect((await postJson(`${gateway.url}/v1/auth/register`, reg)).status).toBe(201);
    const login = await postJson(`${gateway.url}/v1/auth/login`, {
      email: reg.email,
      password: reg.password,
    });
    const bearer = { authorization: `Bearer ${(login.body as { accessToken: string }).accessToken}` };

    const created = await postJson(
      `${gateway.url}/v1/payments`,
      { amount: "4200", currency: "EUR", method: "PAYMENT_METHOD_CARD", description: "e2e books" },
      { ...bearer, "idempotency-key": randomUUID() },
    );
    expect(created.status).toBe(201);
    const paymentId = (created.body as { payment: { id: string } }).payment.id;

    const card = {
      number: "4242 4242 4242 4242",
      expMonth: 12,
      expYear: new Date().getFullYear() + 2,
      cvc: "123",
    };
    const processed = await postJson(
      `${gateway.url}/v1/payments/${paymentId}:process`,
      { card },
      { ...bearer, "idempotency-key": randomUUID() },
    );
    expect(processed.status).toBe(200);
    expect((processed.body as { payment: { status: string } }).payment.status).toBe(
      "PAYMENT_STATUS_COMPLETED",
    );

    // The confirmation for PaymentSucceeded reaches the real SMTP receiver, addressed to the user.
    const sendSpan = await eventually(() =>
      spans
        .getFinishedSpans()
        .find(
          (s) =>
            s.name === "send email" &&
            String(s.attributes["notifications.template"]).includes("payment-succeeded") &&
            s.status.code !== SpanStatusCode.ERROR,
        ),
    );
    const received = await eventually(() =>
      mail.mails.find((m) => m.to.includes(String(reg.email)) && m.raw.includes("42.00")),
    );
    expect(received.subject.length).toBeGreaterThan(0);
    // Card data never leaves the payments service.
    expect(received.raw).not.toContain("4242 4242 4242 4242");
    expect(received.raw).not.toContain("4242424242424242");

    // One trace: the gateway's server span of the process request → payments → the event →
    // the notifications consumer → the SMTP send.
    const gatewaySpan = spans
      .getFinishedSpans()
      .find(
        (s) =>
          s.kind === SpanKind.SERVER &&
          s.instrumentationScope.name === "@zero/gateway" &&
          String(s.attributes["url.path"]).endsWith(":process"),
      );
    expect(gatewaySpan, "the gateway's span for the process request").toBeDefined();
    expect(sendSpan.spanContext().traceId).toBe(gatewaySpan!.spanContext().traceId);
    const trace = spans
      .getFinishedSpans()
      .filter((s) => s.spanContext().traceId === gatewaySpan!.spanContext().traceId);
    const kinds = new Set(trace.map((s) => s.kind));
    expect(kinds).toEqual(new Set([SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER]));
  });
});
