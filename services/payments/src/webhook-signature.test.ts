import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhookSignature } from "./webhook-signature.js";

const body = new TextEncoder().encode('{"id":"evt_1","type":"payment_intent.succeeded"}');
const secret = "whsec_current_0123456789";
const old = "whsec_previous_0123456789";
const now = 1_800_000_000;

const verify = (header: string | null, secrets = [secret], nowSeconds = now) =>
  verifyWebhookSignature({ header, payload: body, secrets, nowSeconds });

describe("webhook signatures", () => {
  it("accepts a fresh signature by a known secret", () => {
    expect(() => verify(signWebhook(body, [secret], now))).not.toThrow();
    expect(() => verify(signWebhook(body, [secret], now - 300))).not.toThrow();
  });

  it("accepts any of several signatures and any of several secrets (rotation)", () => {
    expect(() => verify(signWebhook(body, ["whsec_unknown_000000000", secret], now))).not.toThrow();
    expect(() => verify(signWebhook(body, [old], now), [secret, old])).not.toThrow();
  });

  it("refuses stale, future, tampered, unknown and malformed signatures", () => {
    expect(() => verify(signWebhook(body, [secret], now - 301))).toThrow(/more than 300 seconds/);
    expect(() => verify(signWebhook(body, [secret], now + 301))).toThrow(/more than 300 seconds/);
    expect(() => verify(signWebhook(body, [old], now))).toThrow(/does not match/);
    const header = signWebhook(new TextEncoder().encode("{}"), [secret], now);
    expect(() => verify(header)).toThrow(/does not match/);
    for (const bad of [null, "", "t=1", "v1=abc", `t=${now},v1=${"g".repeat(64)}`, "x".repeat(3000)]) {
      expect(() => verify(bad)).toThrow();
    }
  });
});
