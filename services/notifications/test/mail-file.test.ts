import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeliveryStatus } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { afterAll, beforeAll, expect, it } from "vitest";
import { header, startTestNotifications, waitFor, type TestNotifications } from "./fixtures.js";

// Without SMTP_URL the platform still starts and "sends": one .eml file per message.

let n: TestNotifications;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "zero-mail-"));
  n = await startTestNotifications({ SMTP_URL: "", MAIL_DIR: dir });
});

afterAll(async () => {
  await n?.close();
  await rm(dir, { recursive: true, force: true });
});

it("writes each message as an .eml file named by its delivery and logs the recipient redacted", async () => {
  const to = "ada.lovelace@example.com";
  const { delivery } = await n.admin.sendNotification({
    to,
    template: "welcome",
    variables: { first_name: "Ada" },
  });
  await waitFor(
    "the file",
    async () =>
      (await n.admin.getDelivery({ deliveryId: delivery!.id })).delivery?.status === DeliveryStatus.SENT,
  );
  expect(await readdir(dir)).toEqual([`${delivery!.id}.eml`]);
  const raw = await readFile(join(dir, `${delivery!.id}.eml`), "utf8");
  expect(header(raw, "message-id")).toBe(delivery!.messageId);
  expect(header(raw, "to")).toBe(to);
  expect(header(raw, "subject")).toBe("Welcome to Zero, Ada");
  expect(n.logs()).toContain('"to":"a…@example.com"');
  expect(n.logs()).not.toContain(to);
  expect(n.smtp.mails).toHaveLength(0);
});
