import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { ensureStream } from "@zero/kit/events/streams";
import { UserDeletedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aCard,
  aPayment,
  eventually,
  newKey,
  rpcError,
  startTestPayments,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

let t: TestPayments;
let privacy: ReturnType<typeof createClient<typeof PersonalDataService>>;
let serviceAuth: { headers: Record<string, string> };

beforeAll(async () => {
  t = await startTestPayments();
  privacy = createClient(
    PersonalDataService,
    createConnectTransport({ baseUrl: t.server.url, httpVersion: "1.1" }),
  );
  const token = await t.issuer.service("users");
  serviceAuth = { headers: { authorization: `Bearer ${token}` } };
});

afterAll(async () => {
  await t?.close();
});

async function aCustomerWithHistory(): Promise<{ user: TestUser; paymentId: string }> {
  const user = await t.user({ email: "grace@example.com" });
  const admin = await t.admin();
  const { payment } = await t.client.createPayment(
    aPayment({ description: "Birthday present for Ada", metadata: { note: "gift wrap, Grace" } }),
    user.as(newKey()),
  );
  await t.client.processPayment(
    { paymentId: payment!.id, card: aCard("5555555555554444") },
    user.as(newKey()),
  );
  await t.client.createRefund({ paymentId: payment!.id, amount: 500n, reason: "damaged" }, admin.as());
  const { payment: other } = await t.client.createPayment(aPayment(), user.as());
  await t.client.cancelPayment({ paymentId: other!.id, reason: "Grace changed her mind" }, user.as());
  return { user, paymentId: payment!.id };
}

describe("ExportPersonalData", () => {
  it("exports the user's payments, refunds and history to a service, without card numbers", async () => {
    const { user, paymentId } = await aCustomerWithHistory();
    const { service, data } = await privacy.exportPersonalData({ userId: user.id }, serviceAuth);
    expect(service).toBe("payments");
    const payments = (data as { payments: Record<string, unknown>[] }).payments;
    expect(payments).toHaveLength(2);
    expect(payments[0]).toMatchObject({
      id: paymentId,
      amount: { amount: "1999", currency: "EUR" },
      amount_refunded: { amount: "500", currency: "EUR" },
      status: "partially_refunded",
      description: "Birthday present for Ada",
      receipt_email: "grace@example.com",
      card: { brand: "mastercard", last4: "4444" },
    });
    expect((payments[0]!["refunds"] as unknown[]).length).toBe(1);
    expect((payments[0]!["history"] as unknown[]).length).toBe(3);
    expect(JSON.stringify(data)).not.toContain("5555555555554444");
  });

  it("answers an empty object for a user it knows nothing about", async () => {
    const { data } = await privacy.exportPersonalData({ userId: randomUUID() }, serviceAuth);
    expect(data).toEqual({});
  });

  it("is reserved for services", async () => {
    const user = await t.user();
    expect((await rpcError(privacy.exportPersonalData({ userId: user.id }, user.as()))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await rpcError(privacy.exportPersonalData({ userId: user.id }))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(privacy.exportPersonalData({ userId: "nope" }, serviceAuth))).code).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("UserDeleted", () => {
  it("anonymises what the ledger keeps, once, however often the event comes", async () => {
    const { user, paymentId } = await aCustomerWithHistory();
    const bystander = await aCustomerWithHistory();

    const nc = await connect({ servers: t.nats.url });
    try {
      // auth's stream, as auth creates it.
      await ensureStream(nc, { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] });
      const js = jetstream(nc);
      const eventId = randomUUID();
      const publish = async () => {
        const h = natsHeaders();
        h.set("ce-id", eventId);
        h.set("ce-type", UserDeletedSchema.typeName);
        h.set("ce-source", "zero.auth");
        h.set("ce-specversion", "1.0");
        h.set("content-type", "application/protobuf");
        await js.publish(
          UserDeletedSchema.typeName,
          toBinary(
            UserDeletedSchema,
            create(UserDeletedSchema, { userId: user.id, deleteTime: timestampNow() }),
          ),
          { headers: h },
        );
      };
      await publish();
      await publish(); // a redelivery (JetStream dedups this one; the inbox covers later ones)
    } finally {
      await nc.close();
    }

    const rows = await eventually(
      () =>
        t.server.db.selectFrom("payments").selectAll().where("user_id", "=", user.id).orderBy("id").execute(),
      (rs) => rs.length === 2 && rs.every((r) => r.erased_at !== null),
      30_000,
    );
    for (const row of rows) {
      expect(row).toMatchObject({
        description: "",
        metadata: {},
        receipt_email: null,
        card_brand: null,
        card_last4: null,
      });
    }
    // The ledger keeps the money facts.
    expect(rows[0]).toMatchObject({
      id: paymentId,
      amount: "1999",
      amount_refunded: "500",
      currency: "EUR",
      status: "partially_refunded",
    });
    // Nothing the user wrote or sent survives anywhere in the database.
    let dump = "";
    const { rows: tables } = await sql<{
      name: string;
    }>`select tablename as name from pg_tables where schemaname = 'public'`.execute(t.server.db);
    for (const { name } of tables) {
      const { rows: all } = await sql<{
        row: string;
      }>`select to_jsonb(t)::text as row from ${sql.table(name)} t`.execute(t.server.db);
      dump += all.map((r) => r.row).join("\n");
    }
    // (The bystander wrote the same texts; only the deleted user's rows may lose them.)
    const mine = await t.server.db
      .selectFrom("payment_transitions")
      .select("reason")
      .where("actor", "=", `user:${user.id}`)
      .execute();
    expect(mine.every((r) => r.reason === "")).toBe(true);
    const keys = await t.server.db
      .selectFrom("idempotency_keys")
      .select("key")
      .where("scope", "=", user.id)
      .execute();
    expect(keys).toEqual([]);
    expect(dump).toContain("Birthday present for Ada"); // the bystander's
    const theirs = await t.server.db
      .selectFrom("payments")
      .selectAll()
      .where("user_id", "=", bystander.user.id)
      .execute();
    expect(theirs.every((r) => r.erased_at === null && r.receipt_email === "grace@example.com")).toBe(true);

    // Applied once: one inbox row for the event.
    const inbox = await sql<{
      n: string;
    }>`select count(*) as n from kit_inbox where consumer = 'payments-erasure'`.execute(t.server.db);
    expect(inbox.rows[0]?.n).toBe("1");
    const { data } = await privacy.exportPersonalData({ userId: user.id }, serviceAuth);
    expect(JSON.stringify(data)).not.toMatch(/Birthday|grace@example.com|Grace changed/);
  });
});
