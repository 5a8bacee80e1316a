import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { createLogger } from "@zero/kit/log";
import { PaymentService, PaymentStatus } from "@zero/proto/zero/payments/v1/payments_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aCard,
  aPayment,
  aProviderEvent,
  newKey,
  signed,
  rpcError,
  startTestPayments,
  type TestPayments,
  type TestUser,
} from "./fixtures.js";

// The service behind the real gateway: REST (canonical and legacy routes), Connect, gRPC and
// gRPC-Web, with the gateway's edge checks and the service's own.

let t: TestPayments;
let gateway: Gateway;
let alice: TestUser;
let mallory: TestUser;
let admin: TestUser;

beforeAll(async () => {
  t = await startTestPayments();
  gateway = await startGateway({
    // PersonalDataService is listed (and routable to the service) only to prove the edge refuses it.
    services: [PaymentService, PersonalDataService],
    upstreamUrls: { payments: t.server.url, privacy: t.server.url },
    logger: createLogger("gateway", { level: "silent" }),
    port: 0,
    host: "127.0.0.1",
    verifier: t.issuer.verifier,
  });
  [alice, mallory, admin] = await Promise.all([t.user({ email: "alice@example.com" }), t.user(), t.admin()]);
});

afterAll(async () => {
  await gateway?.close(1000);
  await t?.close();
});

interface Reply {
  status: number;
  body: Record<string, unknown> & {
    error?: { code: number; status: string; message: string; details: { reason?: string }[] };
  };
  /** The `Idempotent-Replayed` response header. */
  replayed: string | null;
}

async function rest(
  method: string,
  path: string,
  opts: { user?: TestUser; key?: string; body?: unknown } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.user) headers["authorization"] = `Bearer ${opts.user.token}`;
  if (opts.key) headers["idempotency-key"] = opts.key;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers,
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
  });
  return {
    status: response.status,
    body: (await response.json()) as Reply["body"],
    replayed: response.headers.get("idempotent-replayed"),
  };
}

const payment = (reply: Reply) =>
  reply.body["payment"] as { id: string; reference: string; status: string; amount: string };
const newPayment = { amount: "1999", currency: "EUR", method: "PAYMENT_METHOD_CARD", description: "books" };

describe("REST through the gateway", () => {
  it("creates (201), replays with the same Idempotency-Key, and answers 422 for the key with other parameters", async () => {
    const key = newKey();
    const first = await rest("POST", "/v1/payments", { user: alice, key, body: newPayment });
    expect(first.status).toBe(201);
    expect(payment(first)).toMatchObject({
      amount: "1999",
      currency: "EUR",
      status: "PAYMENT_STATUS_PENDING",
    });
    expect(first.replayed).toBeNull();
    const again = await rest("POST", "/v1/payments", { user: alice, key, body: newPayment });
    expect(again).toEqual({ ...first, replayed: "true" });
    const reused = await rest("POST", "/v1/payments", {
      user: alice,
      key,
      body: { ...newPayment, amount: "1" },
    });
    expect(reused.status).toBe(422);
    expect(reused.body.error).toMatchObject({ code: 422, status: "INVALID_ARGUMENT" });
    expect(reused.body.error!.details.some((d) => d.reason === "IDEMPOTENCY_KEY_REUSED")).toBe(true);
  });

  it("processes, lists with filters, refunds (admin) and follows the state machine", async () => {
    const created = payment(
      await rest("POST", "/v1/payments", { user: alice, body: { ...newPayment, currency: "USD" } }),
    );
    const processed = await rest("POST", `/v1/payments/${created.id}:process`, {
      user: alice,
      key: newKey(),
      body: {
        card: { number: "4242424242424242", expMonth: 12, expYear: new Date().getFullYear() + 1, cvc: "123" },
      },
    });
    expect(processed.status).toBe(200);
    expect(payment(processed)).toMatchObject({ status: "PAYMENT_STATUS_COMPLETED" });
    expect(JSON.stringify(processed.body)).not.toContain("4242424242424242");

    const listed = await rest(
      "GET",
      "/v1/payments?status=PAYMENT_STATUS_COMPLETED&currency=USD&pageSize=10",
      { user: alice },
    );
    expect(listed.status).toBe(200);
    expect((listed.body["payments"] as { id: string }[]).map((p) => p.id)).toEqual([created.id]);

    const refund = await rest("POST", `/v1/payments/${created.id}/refunds`, {
      user: admin,
      key: newKey(),
      body: { amount: "999" },
    });
    expect(refund.status).toBe(201);
    expect(refund.body).toMatchObject({
      refund: { amount: "999", status: "REFUND_STATUS_SUCCEEDED" },
      payment: { status: "PAYMENT_STATUS_PARTIALLY_REFUNDED" },
    });
    const ownerRefund = await rest("POST", `/v1/payments/${created.id}/refunds`, { user: alice, body: {} });
    expect(ownerRefund.status).toBe(403);

    const again = await rest("POST", `/v1/payments/${created.id}:process`, {
      user: alice,
      body: {
        card: { number: "4242424242424242", expMonth: 12, expYear: new Date().getFullYear() + 1, cvc: "123" },
      },
    });
    expect(again.status).toBe(400);
    expect(again.body.error?.status).toBe("FAILED_PRECONDITION");
  });

  it("serves the seeds' legacy routes", async () => {
    const viaCreate = await rest("POST", "/payments/create", { user: alice, body: newPayment });
    expect(viaCreate.status).toBe(201);
    const viaPost = await rest("POST", "/payments", { user: alice, body: newPayment });
    expect(viaPost.status).toBe(201);
    const p = payment(viaPost);
    expect((await rest("GET", `/payments/${p.id}`, { user: alice })).status).toBe(200);
    expect(payment(await rest("GET", `/payments/${p.reference}`, { user: alice })).id).toBe(p.id);
    const list = await rest("GET", "/payments", { user: alice });
    expect((list.body["payments"] as unknown[]).length).toBeGreaterThanOrEqual(2);
    const processed = await rest("POST", `/payments/${p.id}/process`, {
      user: alice,
      body: {
        card: { number: "4000000000000002", expMonth: 1, expYear: new Date().getFullYear() + 1, cvc: "999" },
      },
    });
    expect(payment(processed)).toMatchObject({ status: "PAYMENT_STATUS_FAILED" });

    const pending = payment(viaCreate);
    const put = await rest("PUT", `/payments/${pending.id}/status`, {
      user: admin,
      body: { status: "PAYMENT_STATUS_PROCESSING", reason: "manual" },
    });
    expect(payment(put).status).toBe("PAYMENT_STATUS_PROCESSING");
    const patch = await rest("PATCH", `/payments/${pending.reference}/status`, {
      user: admin,
      body: { status: "PAYMENT_STATUS_COMPLETED", reason: "bank confirmed" },
    });
    expect(payment(patch).status).toBe("PAYMENT_STATUS_COMPLETED");
    const userPut = await rest("PUT", `/payments/${pending.id}/status`, {
      user: alice,
      body: { status: "PAYMENT_STATUS_FAILED", reason: "x" },
    });
    expect(userPut.status).toBe(403);

    const doomed = payment(await rest("POST", "/payments", { user: alice, body: newPayment }));
    const deleted = await rest("DELETE", `/payments/${doomed.id}`, { user: alice });
    expect(payment(deleted).status).toBe("PAYMENT_STATUS_CANCELLED");
    expect((await rest("GET", `/v1/payments/${doomed.id}`, { user: alice })).status).toBe(404);
    expect((await rest("DELETE", `/v1/payments/${pending.id}`, { user: admin })).status).toBe(400);
  });

  it("answers bad input with 400/401/404, never 5xx", async () => {
    const cases: [string, string, { user?: TestUser; body?: unknown }, number][] = [
      ["POST", "/v1/payments", { body: newPayment }, 401],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, amount: "12.50" } }, 400],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, amount: "-1" } }, 400],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, currency: "EURO" } }, 400],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, method: "cash" } }, 400],
      [
        "POST",
        "/v1/payments",
        { user: alice, body: { ...newPayment, status: "PAYMENT_STATUS_COMPLETED" } },
        400,
      ],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, userId: mallory.id } }, 400],
      ["POST", "/v1/payments", { user: alice, body: { amount: "100" } }, 400],
      [
        "POST",
        "/v1/payments",
        { user: alice, body: { ...newPayment, amount: "99999999999999999999999" } },
        400,
      ],
      ["GET", "/v1/payments?page_size=-1", { user: alice }, 400],
      ["GET", "/v1/payments?colour=red", { user: alice }, 400],
      ["GET", "/v1/payments?startTime=yesterday", { user: alice }, 400],
      ["GET", "/v1/payments/not-a-payment", { user: alice }, 404],
      ["GET", "/v1/payments/%27%3B%20drop%20table", { user: alice }, 404],
      // U+0000, which PostgreSQL cannot store, in each text field (it used to be a 500).
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, description: "a\u0000b" } }, 400],
      ["POST", "/v1/payments", { user: alice, body: { ...newPayment, metadata: { k: "a\u0000b" } } }, 400],
      [
        "POST",
        "/v1/payments",
        { user: alice, body: { ...newPayment, receiptEmail: "a\u0000b@example.com" } },
        400,
      ],
      ["GET", "/v1/payments/a%00b", { user: alice }, 400],
    ];
    for (const [method, path, opts, status] of cases) {
      const reply = await rest(method, path, opts);
      expect({ method, path, status: reply.status }).toEqual({ method, path, status });
      expect(reply.body.error?.message).toBeTruthy();
    }
  });
});

describe("provider webhooks over REST (raw body through the gateway)", () => {
  const post = (path: string, body: Uint8Array, signature: string) =>
    fetch(`${gateway.url}${path}`, {
      method: "POST",
      // Whatever the provider sends: the bytes are passed on untouched (google.api.HttpBody).
      headers: { "content-type": "application/json; charset=utf-8", "webhook-signature": signature },
      body,
    });

  it("verifies the signature over the exact bytes, on the canonical and the legacy route, and ignores replays", async () => {
    const { body, signature } = signed(aProviderEvent("payment_intent.succeeded", { id: "pi_unknown_1" }));
    const first = await post("/v1/payments/webhook", body, signature);
    expect(first.status, JSON.stringify(await first.clone().json())).toBe(200);
    expect(await first.json()).toMatchObject({ received: true, duplicate: false });
    const replay = await post("/payments/webhook", body, signature);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ received: true, duplicate: true });
  });

  it("refuses a tampered body or a bad signature with a 4xx in the error shape", async () => {
    const { body, signature } = signed(aProviderEvent("payment_intent.succeeded", { id: "pi_unknown_2" }));
    const tampered = Uint8Array.from(body);
    tampered[tampered.length - 2] = 0x20;
    for (const res of [
      await post("/v1/payments/webhook", tampered, signature),
      await post("/v1/payments/webhook", body, "t=1,v1=00"),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(((await res.json()) as { error: { status: string } }).error.status).toBeTruthy();
    }
  });
});

describe("another user's payment, by every protocol", () => {
  const transports = (): [string, Transport][] => [
    ["connect", createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
    ["grpc", createGrpcTransport({ baseUrl: gateway.url })],
    ["grpc-web", createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" })],
  ];

  it("is NOT_FOUND whatever the call, exactly like a payment that does not exist", async () => {
    const { payment: theirs } = await t.client.createPayment(aPayment(), alice.as());
    for (const [name, transport] of transports()) {
      const client: Client<typeof PaymentService> = createClient(PaymentService, transport);
      const opts = mallory.as(newKey());
      const calls = [
        () => client.getPayment({ paymentId: theirs!.id }, opts),
        () => client.getPayment({ paymentId: theirs!.reference }, opts),
        () => client.processPayment({ paymentId: theirs!.id, card: aCard() }, opts),
        () => client.cancelPayment({ paymentId: theirs!.id }, mallory.as(newKey())),
        () => client.deletePayment({ paymentId: theirs!.id }, mallory.as(newKey())),
        () => client.listRefunds({ paymentId: theirs!.id }, opts),
      ];
      for (const call of calls)
        expect({ name, code: (await rpcError(call())).code }).toEqual({ name, code: Code.NotFound });
      const listed = await client.listPayments({ pageSize: 100 }, mallory.as());
      expect(listed.payments.map((p) => p.id)).not.toContain(theirs!.id);
      expect((await rpcError(client.listPayments({ userId: alice.id }, mallory.as()))).code).toBe(
        Code.PermissionDenied,
      );
      // Anonymous: refused at the edge.
      expect((await rpcError(client.getPayment({ paymentId: theirs!.id }))).code).toBe(Code.Unauthenticated);
    }
    const rest404 = await rest("GET", `/v1/payments/${theirs!.id}`, { user: mallory });
    expect(rest404.status).toBe(404);
    // The owner still sees it, untouched.
    const { payment } = await t.client.getPayment({ paymentId: theirs!.id }, alice.as());
    expect(payment?.status).toBe(PaymentStatus.PENDING);
  });

  it("never routes the INTERNAL PersonalDataService, not even for an admin or a service", async () => {
    const service = await t.issuer.service("users");
    for (const token of [admin.token, service]) {
      const response = await fetch(`${gateway.url}/zero.privacy.v1.PersonalDataService/ExportPersonalData`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "connect-protocol-version": "1",
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({ userId: alice.id }),
      });
      expect(response.status).toBe(403);
    }
  });
});
