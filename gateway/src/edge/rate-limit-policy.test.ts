import { describe, expect, it } from "vitest";
import { createRateLimitPolicy, parseRateLimit } from "./rate-limit-policy.js";

describe("rate-limit policy", () => {
  const policy = createRateLimitPolicy({
    default: { limit: 100, periodMs: 60_000 },
    routes: [{ pattern: "zero.testing.v1.EchoService/Fail", limit: { limit: 2, periodMs: 60_000 } }],
    users: { "vip-1": { limit: 1000, periodMs: 60_000 } },
  });

  it("draws every request from the client's overall bucket, keyed by IP", () => {
    expect(policy.bucketsFor(undefined, "203.0.113.9", undefined)).toEqual([
      { key: "zero:rl:{ip:203.0.113.9}", limit: 100, periodMs: 60_000 },
    ]);
  });

  it("adds the route's bucket when a rule matches; login, register and password methods are strict by default", () => {
    expect(policy.bucketsFor("zero.testing.v1.EchoService/Fail", "1.1.1.1", undefined)).toEqual([
      { key: "zero:rl:{ip:1.1.1.1}", limit: 100, periodMs: 60_000 },
      { key: "zero:rl:{ip:1.1.1.1}:zero.testing.v1.EchoService/Fail", limit: 2, periodMs: 60_000 },
    ]);
    expect(policy.bucketsFor("zero.auth.v1.AuthService/Login", "1.1.1.1", undefined)[1]).toMatchObject({
      limit: 10,
    });
    expect(policy.bucketsFor("zero.auth.v1.AuthService/Register", "1.1.1.1", undefined)[1]).toMatchObject({
      limit: 5,
    });
    expect(
      policy.bucketsFor("zero.auth.v1.AuthService/RequestPasswordReset", "1.1.1.1", undefined)[1],
    ).toMatchObject({ limit: 5 });
    expect(policy.bucketsFor("zero.testing.v1.EchoService/Echo", "1.1.1.1", undefined)).toHaveLength(1);
  });

  it("counts a user with an override per user, at the user's limit", () => {
    expect(policy.hasUserOverrides).toBe(true);
    expect(policy.bucketsFor("zero.testing.v1.EchoService/Echo", "1.1.1.1", "vip-1")).toEqual([
      { key: "zero:rl:{user:vip-1}", limit: 1000, periodMs: 60_000 },
    ]);
    expect(policy.bucketsFor(undefined, "1.1.1.1", "someone-else")[0]?.key).toBe("zero:rl:{ip:1.1.1.1}");
  });

  it("parses limits in the documented forms and explains the rest", () => {
    expect(parseRateLimit("100/min")).toEqual({ limit: 100, periodMs: 60_000 });
    expect(parseRateLimit("10/30s")).toEqual({ limit: 10, periodMs: 30_000 });
    expect(parseRateLimit("1000/h")).toEqual({ limit: 1000, periodMs: 3_600_000 });
    for (const bad of ["100", "0/min", "10/fortnight", "ten/min"]) {
      expect(() => parseRateLimit(bad)).toThrow(/e\.g\. 100\/min/);
    }
  });
});
