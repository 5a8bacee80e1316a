import { ConfigError } from "@zero/kit/config";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const secret = "s".repeat(32);

describe("loadConfig", () => {
  it("applies the documented defaults and freezes the result", () => {
    const c = loadConfig({ PAYMENTS_WEBHOOK_SECRETS: secret });
    expect(c).toMatchObject({
      port: 9006,
      authUrl: "http://127.0.0.1:9001",
      issuer: "zero-auth",
      audience: "zero",
      webhookSecrets: [secret],
      settleDelayMs: 2000,
      idempotencyWaitMs: 10_000,
      idempotencyLeaseMs: 30_000,
    });
    expect(c.providerWebhookUrl).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.webhookSecrets)).toBe(true);
  });

  it("keeps the rotation order of the secrets", () => {
    expect(
      loadConfig({ PAYMENTS_WEBHOOK_SECRETS: `${"n".repeat(20)}, ${"o".repeat(20)}` }).webhookSecrets,
    ).toEqual(["n".repeat(20), "o".repeat(20)]);
  });

  it("reports every problem at once, never echoing a secret", () => {
    let error: unknown;
    try {
      loadConfig({ PORT: "x", PAYMENTS_WEBHOOK_SECRETS: "tiny-secret", PAYMENTS_SETTLE_DELAY_MS: "-1" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join("\n");
    expect((error as ConfigError).problems).toHaveLength(3);
    expect(problems).toMatch(/PORT/);
    expect(problems).toMatch(/PAYMENTS_SETTLE_DELAY_MS/);
    expect(problems).toMatch(/PAYMENTS_WEBHOOK_SECRETS: every secret must be at least 16/);
    expect((error as Error).message).not.toContain("tiny-secret");
  });

  it("requires the webhook secret", () => {
    expect(() => loadConfig({})).toThrow(/PAYMENTS_WEBHOOK_SECRETS is required/);
  });
});
