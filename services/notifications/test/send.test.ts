import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import { DeliveryStatus, StatsPeriod } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

let n: TestNotifications;

beforeAll(async () => {
  n = await startTestNotifications();
});

afterAll(async () => {
  await n?.close();
});

async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

function violations(error: ConnectError): Record<string, string> {
  const details = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
  return Object.fromEntries(details.map((v) => [v.field, v.description]));
}

const anAddress = () => `r-${randomUUID()}@example.com`;
const mailsTo = (to: string) => n.smtp.mails.filter((m) => m.to.includes(to));

async function waitUntilSent(id: string) {
  return waitFor(`delivery ${id} to be SENT`, async () => {
    const { delivery } = await n.admin.getDelivery({ deliveryId: id });
    return delivery?.status === DeliveryStatus.SENT ? delivery : undefined;
  });
}

describe("SendNotification", () => {
  it("queues a templated message that arrives at the SMTP server with its Message-ID", async () => {
    const to = anAddress();
    const { delivery } = await n.admin.sendNotification({
      to: `  ${to.toUpperCase()} `,
      template: "welcome",
      variables: { first_name: "Ada <b>", email: to },
    });
    expect(delivery).toMatchObject({
      status: DeliveryStatus.QUEUED,
      recipient: to,
      template: "welcome",
      templateVersion: 1,
      locale: "en",
      subject: "Welcome to Zero, Ada <b>",
      source: "api",
    });
    const sent = await waitUntilSent(delivery!.id);
    expect(sent.attempts).toBe(1);
    expect(sent.sendTime).toBeDefined();
    const [mail] = mailsTo(to);
    expect(mail?.messageId).toBe(delivery!.messageId);
    expect(mail?.messageId).toBe(`<${delivery!.id}@notifications.zero.local>`);
    // The HTML part escaped the name (quoted-printable keeps `&lt;` as is).
    expect(mail?.raw).toContain("Welcome, Ada &lt;b&gt;!");
  });

  it("sends an inline message rendered like a template", async () => {
    const to = anAddress();
    const { delivery } = await n.admin.sendNotification({
      to,
      subject: "Hello {{name}}",
      textBody: "Plain {{name}}",
      variables: { name: "Grace" },
    });
    expect(delivery?.template).toBe("");
    await waitUntilSent(delivery!.id);
    expect(mailsTo(to)[0]?.subject).toBe("Hello Grace");
  });

  it("answers the first delivery again for the same idempotency key (body or Idempotency-Key header)", async () => {
    const to = anAddress();
    const key = randomUUID();
    const request = { to, template: "welcome", variables: { email: to }, idempotencyKey: key };
    const first = await n.admin.sendNotification(request);
    const second = await n.admin.sendNotification(request);
    expect(second.delivery?.id).toBe(first.delivery?.id);

    const headerKey = randomUUID();
    const viaHeader = await n.admin.sendNotification(
      { to, template: "welcome", variables: { email: to } },
      { headers: { "idempotency-key": headerKey } },
    );
    const again = await n.admin.sendNotification(
      { to, template: "welcome", variables: { email: to } },
      { headers: { "idempotency-key": headerKey } },
    );
    expect(again.delivery?.id).toBe(viaHeader.delivery?.id);
    await waitUntilSent(first.delivery!.id);
    expect(mailsTo(to).filter((m) => m.messageId === first.delivery!.messageId)).toHaveLength(1);
  });

  it("refuses a reused idempotency key with other parameters", async () => {
    const key = randomUUID();
    await n.admin.sendNotification({ to: anAddress(), template: "welcome", idempotencyKey: key });
    const error = await rpcError(
      n.admin.sendNotification({ to: anAddress(), template: "welcome", idempotencyKey: key }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toHaveProperty("idempotency_key");
  });

  it.each([
    ["a bad address", { to: "not-an-email", template: "welcome" }, ["to"]],
    ["two recipients in one", { to: "a@example.com,b@example.com", template: "welcome" }, ["to"]],
    ["no template and no body", { to: "a@example.com" }, ["template"]],
    ["a template and a body", { to: "a@example.com", template: "welcome", textBody: "x" }, ["text_body"]],
    ["a bad locale", { to: "a@example.com", template: "welcome", locale: "english please" }, ["locale"]],
    [
      "a bad variable name",
      { to: "a@example.com", template: "welcome", variables: { "a-b": "x" } },
      ["variables"],
    ],
    ["raw HTML output inline", { to: "a@example.com", subject: "s", htmlBody: "{{{x}}}" }, ["html_body"]],
    ["a user id that is not a UUID", { to: "a@example.com", template: "welcome", userId: "42" }, ["user_id"]],
    ["a NUL (U+0000) in the address", { to: "a\u0000@example.com", template: "welcome" }, ["to"]],
    [
      "a NUL in a variable's value",
      { to: "a@example.com", template: "welcome", variables: { name: "A\u0000da" } },
      ["variables.name"],
    ],
    [
      "a NUL in an inline message and its idempotency key",
      { to: "a@example.com", subject: "s\u0000", textBody: "\u0000", idempotencyKey: "k\u0000" },
      ["subject", "text_body", "idempotency_key"],
    ],
  ])("refuses %s with invalid_argument naming the fields", async (_, request, fields) => {
    const error = await rpcError(n.admin.sendNotification(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error)).sort()).toEqual([...fields].sort());
  });

  it("answers not_found for an unknown template", async () => {
    const error = await rpcError(n.admin.sendNotification({ to: anAddress(), template: "no-such-template" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toContain("no-such-template");
  });

  it("uses a template's locale, falling back to the language and then to en", async () => {
    await n.admin.createTemplate({ name: "locale-demo", locale: "fr", subject: "Bonjour", textBody: "fr" });
    await n.admin.createTemplate({ name: "locale-demo", subject: "Hello", textBody: "en" });
    const fr = await n.admin.sendNotification({ to: anAddress(), template: "locale-demo", locale: "fr-CA" });
    const de = await n.admin.sendNotification({ to: anAddress(), template: "locale-demo", locale: "de" });
    expect(fr.delivery).toMatchObject({ subject: "Bonjour", locale: "fr" });
    expect(de.delivery).toMatchObject({ subject: "Hello", locale: "en" });
  });

  it("is for admins only", async () => {
    const request = { to: anAddress(), template: "welcome" };
    expect((await rpcError(n.clientAs(undefined).sendNotification(request))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(n.clientAs(["customer"]).sendNotification(request))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await rpcError(n.clientAs(["customer"]).getStats({}))).code).toBe(Code.PermissionDenied);
    expect((await rpcError(n.clientAs(["customer"]).listDeliveries({}))).code).toBe(Code.PermissionDenied);
  });
});

describe("the per-recipient limit", () => {
  it("defers the second and third message by the interval and drops none", async () => {
    const to = anAddress();
    const first = await n.admin.sendNotification({ to, subject: "one", textBody: "1" });
    await waitUntilSent(first.delivery!.id);
    const second = await n.admin.sendNotification({ to, subject: "two", textBody: "2" });
    const third = await n.admin.sendNotification({ to, subject: "three", textBody: "3" });
    expect(second.delivery?.status).toBe(DeliveryStatus.DEFERRED);
    expect(timestampDate(second.delivery!.nextAttemptTime!).getTime()).toBeGreaterThan(Date.now());

    await waitFor("three messages", () => mailsTo(to).length >= 3, 30_000);
    const arrivals = mailsTo(to);
    expect(arrivals.map((m) => m.subject)).toEqual(["one", expect.any(String), expect.any(String)]);
    expect(new Set(arrivals.map((m) => m.subject))).toEqual(new Set(["one", "two", "three"]));
    // RECIPIENT_INTERVAL_MS is 1500 in these tests. The slot is taken when a send starts; arrivals
    // also carry each send's own latency, so allow that much on a loaded machine.
    for (let i = 1; i < arrivals.length; i++) {
      expect(arrivals[i]!.at - arrivals[i - 1]!.at).toBeGreaterThanOrEqual(1000);
    }
    for (const d of [second.delivery!, third.delivery!]) expect((await waitUntilSent(d.id)).attempts).toBe(1);
  });

  it("never holds back transactional mail, which still takes the slot", async () => {
    const to = anAddress();
    const normal = await n.admin.sendNotification({ to, subject: "normal", textBody: "n" });
    await waitUntilSent(normal.delivery!.id);
    const code = await n.service.sendTransactionalEmail({
      template: "email-verification",
      to,
      variables: { verification_code: "424242" },
      idempotencyKey: randomUUID(),
    });
    expect(code.delivery?.status).toBe(DeliveryStatus.QUEUED);
    await waitUntilSent(code.delivery!.id);
    const later = await n.admin.sendNotification({ to, subject: "later", textBody: "l" });
    expect(later.delivery?.status).toBe(DeliveryStatus.DEFERRED);
  });
});

describe("SendTransactionalEmail", () => {
  it("mails the code, never stores, returns or logs it, and erases the body once sent", async () => {
    const to = anAddress();
    const code = `${Math.floor(100000 + Math.random() * 899999)}`;
    const { delivery } = await n.service.sendTransactionalEmail({
      template: "password-reset",
      to,
      locale: "en",
      variables: { reset_code: code, first_name: "Ada", magic: "link-secret-value" },
      secretVariables: ["magic"],
      idempotencyKey: "reset-1",
    });
    expect(delivery).toMatchObject({
      source: "service:auth",
      template: "password-reset",
      variables: { reset_code: "[redacted]", magic: "[redacted]", first_name: "Ada" },
    });
    await waitUntilSent(delivery!.id);
    expect(mailsTo(to)[0]?.raw).toContain(code);

    const row = await n.server.db
      .selectFrom("deliveries")
      .selectAll()
      .where("id", "=", delivery!.id)
      .executeTakeFirstOrThrow();
    expect(row.html_body).toBeNull();
    expect(row.text_body).toBeNull();
    expect(JSON.stringify(row)).not.toContain(code);
    expect(JSON.stringify(row)).not.toContain("link-secret-value");
    expect(n.logs()).not.toContain(code);
    expect(n.logs()).not.toContain(to);
  });

  it("is idempotent per caller and key", async () => {
    const request = {
      template: "email-verification",
      to: anAddress(),
      variables: { verification_code: "111111" },
      idempotencyKey: randomUUID(),
    };
    const first = await n.service.sendTransactionalEmail(request);
    const again = await n.service.sendTransactionalEmail(request);
    expect(again.delivery?.id).toBe(first.delivery?.id);
  });

  it("is internal: users and admins are refused", async () => {
    const request = { template: "welcome", to: anAddress(), idempotencyKey: "k" };
    expect((await rpcError(n.admin.sendTransactionalEmail(request))).code).toBe(Code.PermissionDenied);
    expect((await rpcError(n.clientAs(undefined).sendTransactionalEmail(request))).code).toBe(
      Code.Unauthenticated,
    );
  });

  it("refuses a NUL (U+0000) in any text with invalid_argument naming the field", async () => {
    const error = await rpcError(
      n.service.sendTransactionalEmail({
        template: "welcome",
        to: anAddress(),
        idempotencyKey: "k\u0000",
        variables: { verification_code: "12\u000034" },
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error)).sort()).toEqual(["idempotency_key", "variables.verification_code"]);
  });

  it("requires a template, an address and an idempotency key", async () => {
    const error = await rpcError(
      n.service.sendTransactionalEmail({ template: "", to: "", idempotencyKey: "" }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(error)).sort()).toEqual(["idempotency_key", "template", "to"]);
  });
});

describe("deliveries", () => {
  it("GetDelivery answers not_found for an unknown id and invalid_argument for a malformed one", async () => {
    expect((await rpcError(n.admin.getDelivery({ deliveryId: randomUUID() }))).code).toBe(Code.NotFound);
    expect((await rpcError(n.admin.getDelivery({ deliveryId: "nope" }))).code).toBe(Code.InvalidArgument);
  });

  it("ListDeliveries filters and pages newest first with an opaque cursor", async () => {
    const to = anAddress();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { delivery } = await n.admin.sendNotification({
        to,
        subject: `m${i}`,
        textBody: "x",
        idempotencyKey: randomUUID(),
      });
      ids.push(delivery!.id);
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await n.admin.listDeliveries({ recipient: to, pageSize: 2, pageToken });
      expect(page.deliveries.length).toBeLessThanOrEqual(2);
      seen.push(...page.deliveries.map((d) => d.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual([...ids].reverse());

    const error = await rpcError(
      n.admin.listDeliveries({ recipient: "other@example.com", pageToken: "garbage" }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toHaveProperty("page_token");

    // Filters go straight into a query: a NUL is refused before it gets there.
    const nul = await rpcError(
      n.admin.listDeliveries({ recipient: "a\u0000@example.com", template: "\u0000" }),
    );
    expect(nul.code).toBe(Code.InvalidArgument);
    expect(Object.keys(violations(nul)).sort()).toEqual(["recipient", "template"]);
  });

  it("GetStats counts messages by status, template and day", async () => {
    const stats = await n.admin.getStats({
      startTime: timestampFromDate(new Date(Date.now() - 3_600_000)),
      endTime: timestampFromDate(new Date(Date.now() + 60_000)),
      period: StatsPeriod.HOUR,
    });
    const { count: rowCount } = await n.server.db
      .selectFrom("deliveries")
      .select((eb) => eb.fn.countAll<string>().as("count"))
      .executeTakeFirstOrThrow();
    expect(stats.total).toBe(BigInt(rowCount));
    const sum = (xs: { count: bigint }[]) => xs.reduce((a, x) => a + x.count, 0n);
    expect(sum(stats.byStatus)).toBe(stats.total);
    expect(sum(stats.byTemplate)).toBe(stats.total);
    expect(sum(stats.byPeriod)).toBe(stats.total);
    expect(stats.byTemplate.find((t) => t.template === "welcome")?.count).toBeGreaterThan(0n);

    const legacyDefault = await n.admin.getStats({});
    expect(legacyDefault.period).toBe(StatsPeriod.DAY);
    const bad = await rpcError(
      n.admin.getStats({
        startTime: timestampFromDate(new Date()),
        endTime: timestampFromDate(new Date(Date.now() - 1000)),
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
  });
});
