import { describe, expect, it } from "vitest";
import { DomainError } from "@zero/kit/errors";
import type { Principal, TokenVerifier } from "@zero/kit/principal";
import { createVerifiedTokenCache } from "./verified-token-cache.js";

/** An unsigned token with the given claims: the wrapped verifier below decides validity. */
function tokenWith(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "EdDSA" })}.${part(claims)}.sig`;
}

function countingVerifier(accept: (token: string) => boolean) {
  const calls: string[] = [];
  const verifier: TokenVerifier = {
    verify(token) {
      calls.push(token);
      if (!accept(token)) return Promise.reject(new DomainError("unauthenticated", "bad token"));
      return Promise.resolve<Principal>({ subject: "user-1", roles: [], kind: "user" });
    },
  };
  return { verifier, calls };
}

describe("verified-token cache", () => {
  it("verifies a token once, then answers from memory until its exp", async () => {
    let now = 1_000_000;
    const { verifier, calls } = countingVerifier(() => true);
    const cache = createVerifiedTokenCache(verifier, { now: () => now, maxTtlMs: 600_000 });
    const token = tokenWith({ sub: "user-1", exp: (now + 30_000) / 1000 });
    await cache.verify(token);
    await cache.verify(token);
    expect(calls).toHaveLength(1);
    now += 30_000; // exp reached: verified again (and so refused by a real verifier)
    await cache.verify(token);
    expect(calls).toHaveLength(2);
  });

  it("trusts an entry no longer than maxTtlMs, whatever exp says", async () => {
    let now = 0;
    const { verifier, calls } = countingVerifier(() => true);
    const cache = createVerifiedTokenCache(verifier, { now: () => now, maxTtlMs: 1000 });
    const token = tokenWith({ exp: 3600 });
    await cache.verify(token);
    now += 999;
    await cache.verify(token);
    now += 1;
    await cache.verify(token);
    expect(calls).toHaveLength(2);
  });

  it("never remembers refusals, and shares one verification between concurrent callers", async () => {
    const { verifier, calls } = countingVerifier((token) => !token.startsWith("x"));
    const cache = createVerifiedTokenCache(verifier);
    await expect(cache.verify("x.y.z")).rejects.toThrow("bad token");
    await expect(cache.verify("x.y.z")).rejects.toThrow("bad token");
    expect(calls).toHaveLength(2);
    const token = tokenWith({ exp: Date.now() / 1000 + 60 });
    await Promise.all([cache.verify(token), cache.verify(token), cache.verify(token)]);
    expect(calls).toHaveLength(3);
  });

  it("holds at most maxEntries tokens, dropping the oldest", async () => {
    const { verifier, calls } = countingVerifier(() => true);
    const cache = createVerifiedTokenCache(verifier, { maxEntries: 2 });
    const exp = Date.now() / 1000 + 60;
    const [a, b, c] = ["a", "b", "c"].map((sub) => tokenWith({ sub, exp })) as [string, string, string];
    for (const token of [a, b, c, b, c]) await cache.verify(token);
    expect(calls).toHaveLength(3);
    await cache.verify(a);
    expect(calls).toHaveLength(4);
  });
});
