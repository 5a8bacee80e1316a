import { describe, expect, it } from "vitest";
import { createLocalRateLimiter } from "./gcra.js";

describe("local GCRA limiter (the Redis fallback)", () => {
  it("allows a burst of the limit, then one request per interval", () => {
    let now = 0;
    const limiter = createLocalRateLimiter({ now: () => now });
    const bucket = [{ key: "k", limit: 3, periodMs: 3000 }];
    expect(limiter.check(bucket)).toMatchObject({ allowed: true, remaining: 2, limit: 3 });
    expect(limiter.check(bucket)).toMatchObject({ allowed: true, remaining: 1 });
    expect(limiter.check(bucket)).toMatchObject({ allowed: true, remaining: 0, resetMs: 3000 });
    expect(limiter.check(bucket)).toMatchObject({ allowed: false, retryAfterMs: 1000, remaining: 0 });
    now += 1000;
    expect(limiter.check(bucket)).toMatchObject({ allowed: true, remaining: 0 });
    now += 3000;
    expect(limiter.check(bucket)).toMatchObject({ allowed: true, remaining: 2 });
  });

  it("charges every bucket or none, and reports the most restrictive", () => {
    const now = 0;
    const limiter = createLocalRateLimiter({ now: () => now });
    const overall = { key: "ip", limit: 100, periodMs: 60_000 };
    const login = { key: "ip:login", limit: 2, periodMs: 60_000 };
    expect(limiter.check([overall, login])).toMatchObject({ allowed: true, limit: 2, remaining: 1 });
    expect(limiter.check([overall, login])).toMatchObject({ allowed: true, limit: 2, remaining: 0 });
    const refused = limiter.check([overall, login]);
    expect(refused).toMatchObject({ allowed: false, limit: 2 });
    expect(refused.retryAfterMs).toBe(30_000);
    // The refusal cost the overall bucket nothing: 97 left after this one.
    expect(limiter.check([overall])).toMatchObject({ allowed: true, remaining: 97 });
  });

  it("keeps at most maxKeys buckets", () => {
    const limiter = createLocalRateLimiter({ maxKeys: 2, now: () => 0 });
    const one = { key: "a", limit: 1, periodMs: 60_000 };
    expect(limiter.check([one]).allowed).toBe(true);
    expect(limiter.check([one]).allowed).toBe(false);
    limiter.check([{ key: "b", limit: 1, periodMs: 60_000 }]);
    limiter.check([{ key: "c", limit: 1, periodMs: 60_000 }]);
    // "a" was the least recently charged and was dropped: a fresh bucket.
    expect(limiter.check([one]).allowed).toBe(true);
  });
});
