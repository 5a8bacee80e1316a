import { describe, expect, it } from "vitest";
import type { HandlerContext } from "@connectrpc/connect";
import { clientContext, describeDevice } from "./client-context.js";

const ctx = (headers: Record<string, string>) =>
  ({ requestHeader: new Headers(headers) }) as unknown as HandlerContext;

describe("clientContext", () => {
  it("takes the nearest forwarded address and the user agent", () => {
    expect(
      clientContext(ctx({ "x-forwarded-for": "10.0.0.1, 203.0.113.5", "user-agent": "curl/8.5.0" })),
    ).toEqual({
      ip: "203.0.113.5",
      userAgent: "curl/8.5.0",
    });
    expect(clientContext(ctx({ "x-forwarded-for": "2001:db8::1" })).ip).toBe("2001:db8::1");
  });

  it("drops what is not an address and defuses control characters", () => {
    expect(clientContext(ctx({ "x-forwarded-for": "<script>" })).ip).toBeNull();
    expect(clientContext(ctx({})).ip).toBeNull();
    const agent = clientContext(ctx({ "user-agent": `evil\u0007agent${"x".repeat(600)}` })).userAgent;
    expect(agent).toHaveLength(512);
    expect(agent).not.toMatch(/\p{Cc}/u);
  });
});

describe("describeDevice", () => {
  it.each([
    [
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0",
      "Edge on Windows",
    ],
    [
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1",
      "Safari on iOS",
    ],
    [
      "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
      "Chrome on Android",
    ],
    ["curl/8.5.0", "curl"],
    ["grpc-node-js/1.14.7", "gRPC client"],
    ["something else", "Unknown browser"],
  ])("%s → %s", (ua, expected) => {
    expect(describeDevice(ua)).toBe(expected);
  });

  it("says so when there is no user agent", () => {
    expect(describeDevice(null)).toBe("Unknown device");
  });
});
