import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { startTelemetry, type Telemetry } from "@zero/kit/telemetry";
import { PaymentMethod, PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_CARDS } from "../src/provider.js";
import {
  aCard,
  aPayment,
  captureLogs,
  eventually,
  newKey,
  readPaymentStream,
  rpcError,
  startTestPayments,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

// Card numbers are handled in memory only: after a run through every test card (successes,
// declines, the asynchronous one settled by webhook, refunds, validation errors), no full number
// appears in any database row, log line, span or event. Only brand and last four remain.

// Each vitest fork runs one file, so this file owns the process's global tracer provider.
const exporter = new InMemorySpanExporter();
// Exports wait for the SDK's resource detection: flush before looking.
const processor = new SimpleSpanProcessor(exporter);
let telemetry: Telemetry;
const logs = captureLogs();
let t: TestPayments;
let alice: TestUser;

const numbers = [...Object.values(TEST_CARDS), "5555555555554444", "378282246310005"];
// A number that fails validation (bad checksum) must not leak through the error path either.
const invalid = "4242424242424241";
const cvc = "9731";

beforeAll(async () => {
  telemetry = startTelemetry({
    serviceName: "payments-test",
    spanProcessors: [processor],
  });
  t = await startTestPayments({ logger: logs.logger });
  alice = await t.user();
  const admin = await t.admin();
  for (const number of numbers) {
    const { payment } = await t.client.createPayment(aPayment(), alice.as(newKey()));
    const spaced = number.replace(/(\d{4})/g, "$1 ").trim();
    const { payment: processed } = await t.client.processPayment(
      { paymentId: payment!.id, card: { ...aCard(spaced), cvc } },
      alice.as(newKey()),
    );
    if (processed?.status === PaymentStatus.PROCESSING) {
      await eventually(
        () => t.client.getPayment({ paymentId: payment!.id }, alice.as()),
        (r) => r.payment?.status === PaymentStatus.COMPLETED,
      );
    }
    if (processed?.status === PaymentStatus.COMPLETED) {
      await t.client.createRefund({ paymentId: payment!.id, amount: 100n }, admin.as(newKey()));
    }
  }
  const { payment } = await t.client.createPayment(
    aPayment({ method: PaymentMethod.DEBIT_CARD }),
    alice.as(),
  );
  await rpcError(
    t.client.processPayment({ paymentId: payment!.id, card: { ...aCard(invalid), cvc } }, alice.as(newKey())),
  );
  // Every event published.
  await eventually(
    () =>
      sql<{ n: string }>`select count(*) as n from kit_outbox where published_at is null`.execute(
        t.server.db,
      ),
    (r) => r.rows[0]?.n === "0",
  );
});

afterAll(async () => {
  await t?.close();
  await telemetry?.shutdown();
});

/** Every form a number could take in text: digits, grouped, and hex-encoded (bytea, binary payloads). */
const forms = (number: string): string[] => [
  number,
  number.replace(/(\d{4})/g, "$1 ").trim(),
  Buffer.from(number).toString("hex"),
];

function expectNoCardData(where: string, haystack: string): void {
  for (const number of [...numbers, invalid]) {
    for (const form of forms(number)) {
      expect(
        haystack.includes(form),
        `${where} contains card number ${number.slice(-4)} (as ${form.length} chars)`,
      ).toBe(false);
    }
  }
}

describe("card data", () => {
  it("keeps brand and last four only", async () => {
    const rows = await t.server.db
      .selectFrom("payments")
      .select(["card_brand", "card_last4"])
      .where("card_last4", "is not", null)
      .execute();
    expect(rows.length).toBe(numbers.length);
    expect(new Set(rows.map((r) => r.card_brand))).toEqual(new Set(["visa", "mastercard", "amex"]));
  });

  it("appears in no database row of any table", async () => {
    const { rows: tables } = await sql<{
      name: string;
    }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(t.server.db);
    expect(tables.map((r) => r.name)).toEqual(
      expect.arrayContaining(["payments", "idempotency_keys", "provider_events", "kit_outbox"]),
    );
    let dump = "";
    for (const { name } of tables) {
      const { rows } = await sql<{
        row: string;
      }>`select to_jsonb(t)::text as row from ${sql.table(name)} t`.execute(t.server.db);
      dump += rows.map((r) => r.row).join("\n");
    }
    expect(dump.length).toBeGreaterThan(1000);
    expectNoCardData("the database", dump);
    expect(dump).not.toContain(`"cvc"`);
  });

  it("appears in no log line", () => {
    const text = logs.text();
    expect(text).toContain("provider event applied");
    expectNoCardData("the logs", text);
  });

  it("appears in no span", async () => {
    await processor.forceFlush();
    const spans = exporter.getFinishedSpans();
    expect(spans.some((s) => s.name === "zero.payments.v1.PaymentService/ProcessPayment")).toBe(true);
    const text = JSON.stringify(
      spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status })),
    );
    expectNoCardData("the spans", text);
  });

  it("appears in no event, payload or header", async () => {
    const messages = await readPaymentStream(t.nats.url);
    expect(messages.length).toBeGreaterThan(numbers.length);
    const text = messages
      .map(
        (m) =>
          JSON.stringify(m.headers) +
          Buffer.from(m.data).toString("latin1") +
          Buffer.from(m.data).toString("hex"),
      )
      .join("\n");
    expectNoCardData("the events", text);
  });
});
