import { createLogger } from "@zero/kit/log";
import { describe, expect, it } from "vitest";
import { createLoggingMailSender, createMailer, redactEmail, type TransactionalMail } from "./mail-sender.js";

function capture() {
  const lines: string[] = [];
  return {
    lines,
    logger: createLogger("auth", {
      level: "debug",
      destination: { write: (l: string) => void lines.push(l) },
    }),
  };
}

const mail: TransactionalMail = {
  template: "password-reset",
  to: "grace@example.com",
  userId: "u-1",
  idempotencyKey: "c-1",
  variables: { reset_code: "THE-SECRET-CODE", first_name: "Grace" },
};

describe("createLoggingMailSender", () => {
  it("says a mail would be sent, to a redacted address, without the code", async () => {
    const { lines, logger } = capture();
    await createLoggingMailSender(logger).send(mail);
    const text = lines.join("");
    expect(text).toContain("mail would be sent to g***@example.com");
    expect(text).not.toContain("THE-SECRET-CODE");
    expect(text).not.toContain("grace@");
  });
});

describe("createMailer", () => {
  it("retries a failing send in the background and never logs the code", async () => {
    const { lines, logger } = capture();
    let attempts = 0;
    const mailer = createMailer({
      logger,
      retryBaseMs: 5,
      sender: {
        send() {
          attempts++;
          return attempts < 3 ? Promise.reject(new Error("notifications unavailable")) : Promise.resolve();
        },
      },
    });
    mailer.post(mail);
    await mailer.drain(2000);
    expect(attempts).toBe(3);
    expect(lines.join("")).not.toContain("THE-SECRET-CODE");
  });

  it("gives up after four attempts with one error line", async () => {
    const { lines, logger } = capture();
    const mailer = createMailer({
      logger,
      retryBaseMs: 1,
      sender: { send: () => Promise.reject(new Error("down")) },
    });
    mailer.post(mail);
    await mailer.drain(2000);
    expect(lines.filter((l) => l.includes("transactional mail not sent"))).toHaveLength(1);
  });
});

describe("redactEmail", () => {
  it("keeps the first letter and the domain", () => {
    expect(redactEmail("ada@example.com")).toBe("a***@example.com");
  });
});
