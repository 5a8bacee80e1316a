import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import { DeliveryStatus } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { Redis } from "ioredis";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

let n: TestNotifications;
let redis: Redis;

beforeAll(async () => {
  n = await startTestNotifications();
  redis = new Redis(n.redis.url);
});

afterAll(async () => {
  redis?.disconnect();
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

const fieldsOf = (error: ConnectError) =>
  error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
const aName = () => `t-${randomUUID().slice(0, 8)}`;

describe("templates", () => {
  it("refuses a NUL (U+0000) in a template's text with invalid_argument naming the fields", async () => {
    const name = aName();
    const error = await rpcError(
      n.admin.createTemplate({ name, subject: "s\u0000", textBody: "t", description: "d\u0000" }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fieldsOf(error).sort()).toEqual(["description", "subject"]);
    expect((await rpcError(n.admin.getTemplate({ name }))).code).toBe(Code.NotFound);
  });

  it("ships a default for every template the consumers and auth use", async () => {
    const { templates } = await n.admin.listTemplates({ pageSize: 100 });
    const names = templates.map((t) => t.name);
    for (const name of [
      "welcome",
      "email-verification",
      "password-reset",
      "payment-created",
      "payment-succeeded",
      "payment-failed",
      "payment-refunded",
    ]) {
      expect(names).toContain(name);
    }
    expect(templates.find((t) => t.name === "welcome")).toMatchObject({
      version: 1,
      active: true,
      createdBy: "system",
    });
  });

  it("creates version 1, publishes version 2, and new mail uses the new version at once (cache written through)", async () => {
    const name = aName();
    const created = await n.admin.createTemplate({
      name,
      subject: "v1 {{x}}",
      textBody: "one",
      description: "demo",
    });
    expect(created.template).toMatchObject({ name, locale: "en", version: 1, active: true });
    const to = `c-${randomUUID()}@example.com`;
    const first = await n.admin.sendNotification({ to, template: name, variables: { x: "a" } });
    expect(first.delivery).toMatchObject({ subject: "v1 a", templateVersion: 1 });
    // The first use cached version 1.
    expect(await redis.get(`notifications:template:${name}:en`)).toMatch(/^1:/);

    const published = await n.admin.publishTemplateVersion({
      name,
      subject: "v2 {{x}}",
      htmlBody: "<p>{{x}}</p>",
    });
    expect(published.template).toMatchObject({ version: 2, active: true, description: "demo" });
    expect(await redis.get(`notifications:template:${name}:en`)).toMatch(/^2:/);
    const second = await n.admin.sendNotification({
      to: `d-${randomUUID()}@example.com`,
      template: name,
      variables: { x: "b" },
    });
    expect(second.delivery).toMatchObject({ subject: "v2 b", templateVersion: 2 });

    // Old versions stay readable; the queued message kept the version it was rendered with.
    const v1 = await n.admin.getTemplate({ name, version: 1 });
    expect(v1.template).toMatchObject({ version: 1, active: false, subject: "v1 {{x}}" });
    const sent = await waitFor("the first message", async () => {
      const { delivery } = await n.admin.getDelivery({ deliveryId: first.delivery!.id });
      return delivery?.status === DeliveryStatus.SENT ? delivery : undefined;
    });
    expect(sent.subject).toBe("v1 a");
  });

  it("keeps a stale reader from putting an older version back into the cache", async () => {
    const name = aName();
    await n.admin.createTemplate({ name, subject: "v1", textBody: "1" });
    await n.admin.publishTemplateVersion({ name, subject: "v2", textBody: "2" });
    const key = `notifications:template:${name}:en`;
    // What a reader that loaded version 1 just before the publish would write now:
    const stale = await redis.eval(
      `local c = redis.call('GET', KEYS[1]) if c then local v = tonumber(string.match(c, '^(%d+):')) if v and v > tonumber(ARGV[1]) then return 0 end end redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2]) return 1`,
      1,
      key,
      "1",
      "{}",
    );
    expect(stale).toBe(0);
    const { delivery } = await n.admin.sendNotification({
      to: `e-${randomUUID()}@example.com`,
      template: name,
    });
    expect(delivery?.subject).toBe("v2");
  });

  it("still serves templates from Postgres when the cache holds garbage", async () => {
    const name = aName();
    await n.admin.createTemplate({ name, subject: "fine", textBody: "x" });
    await redis.set(`notifications:template:${name}:en`, "9:{not json");
    const { delivery } = await n.admin.sendNotification({
      to: `f-${randomUUID()}@example.com`,
      template: name,
    });
    expect(delivery?.subject).toBe("fine");
  });

  it("refuses a duplicate name with already_exists and an unknown one with not_found", async () => {
    const name = aName();
    await n.admin.createTemplate({ name, subject: "s", textBody: "t" });
    expect((await rpcError(n.admin.createTemplate({ name, subject: "s", textBody: "t" }))).code).toBe(
      Code.AlreadyExists,
    );
    expect(
      (await rpcError(n.admin.publishTemplateVersion({ name: aName(), subject: "s", textBody: "t" }))).code,
    ).toBe(Code.NotFound);
    expect((await rpcError(n.admin.getTemplate({ name, version: 7 }))).code).toBe(Code.NotFound);
  });

  it("refuses invalid templates with invalid_argument naming each field", async () => {
    const error = await rpcError(
      n.admin.createTemplate({
        name: "Bad Name",
        locale: "??",
        subject: "{{#if}}",
        htmlBody: "{{{raw}}}",
        textBody: "{{> p}}",
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(fieldsOf(error).sort()).toEqual(["html_body", "locale", "name", "subject", "text_body"]);
  });

  it("previews a stored version or a draft, escaping HTML, without sending anything", async () => {
    const before = n.smtp.mails.length;
    const stored = await n.admin.previewTemplate({
      name: "welcome",
      variables: { first_name: "<i>Ada</i>", email: "a@b.co" },
    });
    expect(stored.version).toBe(1);
    expect(stored.subject).toBe("Welcome to Zero, <i>Ada</i>");
    expect(stored.htmlBody).toContain("Welcome, &lt;i&gt;Ada&lt;/i&gt;!");
    const draft = await n.admin.previewTemplate({
      name: "welcome",
      draftSubject: "Draft {{x}}",
      draftTextBody: "T {{x}}",
      variables: { x: "1" },
    });
    expect(draft).toMatchObject({ subject: "Draft 1", textBody: "T 1", htmlBody: "", version: 0 });
    const bad = await rpcError(
      n.admin.previewTemplate({ name: "welcome", draftSubject: "s", draftHtmlBody: "{{&x}}" }),
    );
    expect(fieldsOf(bad)).toEqual(["draft_html_body"]);
    expect(n.smtp.mails.length).toBe(before);
  });

  it("lists templates in pages", async () => {
    const names = new Set<string>();
    let pageToken = "";
    do {
      const page = await n.admin.listTemplates({ pageSize: 3, pageToken });
      for (const t of page.templates) names.add(`${t.name}/${t.locale}`);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    const { templates } = await n.admin.listTemplates({ pageSize: 100 });
    expect(names.size).toBe(templates.length);
  });

  it("is for admins only", async () => {
    expect(
      (
        await rpcError(
          n.clientAs(["customer"]).createTemplate({ name: aName(), subject: "s", textBody: "t" }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    expect((await rpcError(n.clientAs(undefined).listTemplates({}))).code).toBe(Code.Unauthenticated);
  });
});
