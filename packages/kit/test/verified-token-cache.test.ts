import { Redis } from "ioredis";
import { jwtVerify, type JWK } from "jose";
import type * as Jose from "jose";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DomainError } from "../src/errors.js";
import {
  createTokenVerifier,
  type Principal,
  type TokenVerifier,
  type TokenVerifierOptions,
} from "../src/principal.js";
import { createTokenRevocations, withRevocationCheck } from "../src/token-revocations.js";
import { createVerifiedTokenCache, withVerifiedTokenCache } from "../src/verified-token-cache.js";
import { captureLogs } from "./fixtures/logs.js";

// The verifier's memory of verified tokens, with real Ed25519 tokens from the testkit's stand-in for
// auth. jose's `jwtVerify` — the signature check the cache exists to skip — is wrapped (still doing
// the real work) only so the tests can count how many signature checks happened.
vi.mock("jose", async (importOriginal) => {
  const actual = await importOriginal<typeof Jose>();
  return { ...actual, jwtVerify: vi.fn(actual.jwtVerify) };
});
const signatureChecks = () => vi.mocked(jwtVerify).mock.calls.length;

let issuer: TokenIssuer;
let redis: TestRedis;
let client: Redis;
const logs = captureLogs();

beforeAll(async () => {
  issuer = await createTokenIssuer();
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

beforeEach(() => {
  vi.mocked(jwtVerify).mockClear();
});

/** A verifier over a JWKS the test controls, on a clock the test controls (starting at the real time). */
function aVerifier(
  overrides: Partial<TokenVerifierOptions> = {},
  keys: () => JWK[] = () => issuer.jwks.keys,
) {
  const clock = { now: Date.now() };
  let fetches = 0;
  const verifier = createTokenVerifier({
    issuer: issuer.issuer,
    audience: issuer.audience,
    getJwks: () => {
      fetches++;
      return Promise.resolve({ keys: keys() });
    },
    now: () => clock.now,
    ...overrides,
  });
  return { verifier, clock, fetches: () => fetches };
}

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the token to be refused");
}

/** The token with its payload replaced (claims changed) and the original signature kept. */
function tampered(token: string, claims: Record<string, unknown>): string {
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const original = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
  const forged = Buffer.from(JSON.stringify({ ...original, ...claims })).toString("base64url");
  return `${header}.${forged}.${signature}`;
}

describe("the kit verifier's cache of verified tokens", () => {
  it("verifies a token once: later calls answer the same principal without a signature check", async () => {
    const { verifier } = aVerifier();
    const token = await issuer.user("user-1", ["customer", "admin"]);
    const first = await verifier.verify(token);
    expect(first).toEqual({ subject: "user-1", roles: ["customer", "admin"], kind: "user" });
    const second = await verifier.verify(token);
    const third = await verifier.verify(token);
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(signatureChecks()).toBe(1);
    // Handed to every call with this token, so nobody can change it for the next one.
    expect(Object.isFrozen(first) && Object.isFrozen(first.roles)).toBe(true);
    // Another token is another entry.
    expect(await verifier.verify(await issuer.service("orders"))).toMatchObject({ kind: "service" });
    expect(signatureChecks()).toBe(2);
  });

  it("shares one signature check between concurrent calls with a new token", async () => {
    const { verifier } = aVerifier();
    const token = await issuer.user("user-2");
    const principals = await Promise.all([
      verifier.verify(token),
      verifier.verify(token),
      verifier.verify(token),
    ]);
    expect(new Set(principals).size).toBe(1);
    expect(signatureChecks()).toBe(1);
  });

  it("never answers a token from memory at or after its exp: it is verified again and refused", async () => {
    const { verifier, clock } = aVerifier();
    const token = await issuer.sign({ sub: "user-3", expiresIn: "2m" });
    const exp = (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { exp: number })
      .exp;
    await verifier.verify(token);
    clock.now = exp * 1000 - 1;
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-3" });
    expect(signatureChecks()).toBe(1);
    clock.now = exp * 1000;
    expect((await refusal(verifier.verify(token))).reason).toBe("TOKEN_EXPIRED");
    expect((await refusal(verifier.verify(token))).reason).toBe("TOKEN_EXPIRED");
    expect(signatureChecks()).toBe(3);
  });

  it("trusts an entry no longer than maxTtlMs when one is set", async () => {
    const { verifier, clock } = aVerifier({ cache: { maxTtlMs: 1000 } });
    const token = await issuer.user("user-4");
    await verifier.verify(token);
    clock.now += 999;
    await verifier.verify(token);
    expect(signatureChecks()).toBe(1);
    clock.now += 1;
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-4" });
    expect(signatureChecks()).toBe(2);
  });

  it("honours nbf: refused (and not remembered) before it, accepted after, not answered if the clock goes back", async () => {
    const { verifier, clock } = aVerifier();
    const nbf = Math.floor(clock.now / 1000) + 60;
    const token = await issuer.sign({ sub: "user-5", extra: { nbf } });
    expect((await refusal(verifier.verify(token))).reason).toBe("TOKEN_NOT_YET_VALID");
    expect((await refusal(verifier.verify(token))).reason).toBe("TOKEN_NOT_YET_VALID");
    clock.now = nbf * 1000;
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-5" });
    await verifier.verify(token);
    expect(signatureChecks()).toBe(3);
    clock.now = nbf * 1000 - 1;
    expect((await refusal(verifier.verify(token))).reason).toBe("TOKEN_NOT_YET_VALID");
    expect(signatureChecks()).toBe(4);
  });

  it("refuses a forged token every time, even one made from a remembered token", async () => {
    const { verifier } = aVerifier();
    const genuine = await issuer.user("user-6");
    await verifier.verify(genuine);
    const promoted = tampered(genuine, { roles: ["admin"] });
    const stranger = await (await createTokenIssuer()).user("user-6");
    for (const forged of [promoted, promoted, stranger, stranger]) {
      expect((await refusal(verifier.verify(forged))).code).toBe("unauthenticated");
    }
    // Each refusal was a real verification (the stranger's unknown kid is refused before any check).
    expect(signatureChecks()).toBe(1 + 4);
    // The genuine token is still remembered, untouched.
    await expect(verifier.verify(genuine)).resolves.toMatchObject({ subject: "user-6", roles: ["customer"] });
    expect(signatureChecks()).toBe(5);
  });

  it("holds at most maxEntries tokens, dropping the least recently used", async () => {
    const { verifier } = aVerifier({ cache: { maxEntries: 2 } });
    const [a, b, c] = await Promise.all([issuer.user("a"), issuer.user("b"), issuer.user("c")]);
    await verifier.verify(a);
    await verifier.verify(b);
    await verifier.verify(a); // a is now the most recently used
    await verifier.verify(c); // evicts b
    expect(signatureChecks()).toBe(3);
    await verifier.verify(a);
    await verifier.verify(c);
    expect(signatureChecks()).toBe(3);
    await verifier.verify(b);
    expect(signatureChecks()).toBe(4);
  });

  it("verifies every call with cache: false", async () => {
    const { verifier } = aVerifier({ cache: false });
    const token = await issuer.user("user-7");
    await verifier.verify(token);
    await verifier.verify(token);
    expect(signatureChecks()).toBe(2);
  });

  it("stops honouring a token once the JWKS is refetched without its key, and keeps those whose key stays", async () => {
    const next = await createTokenIssuer();
    let published = [...issuer.jwks.keys, ...next.jwks.keys];
    const { verifier, clock, fetches } = aVerifier({ maxAgeMs: 60_000 }, () => published);
    const old = await issuer.user("user-8");
    const current = await next.user("user-9");
    await verifier.verify(old);
    await verifier.verify(current);
    expect(signatureChecks()).toBe(2);

    // auth withdraws the old key. Until the key set is refetched (maxAgeMs), the verifier — cached or
    // not — still holds it: that is the window, the same as without a cache.
    published = [...next.jwks.keys];
    clock.now += 59_999;
    await verifier.verify(old);
    expect(fetches()).toBe(1);
    clock.now += 1;
    const error = await refusal(verifier.verify(old));
    expect(fetches()).toBe(2);
    expect(error.message).toMatch(/unknown key/);
    // The token signed by the key still published is still answered from memory.
    await expect(verifier.verify(current)).resolves.toMatchObject({ subject: "user-9" });
    expect(signatureChecks()).toBe(3);
  });

  it("does not remember a token under a kid whose key material changed", async () => {
    const impostor = await createTokenIssuer();
    const kid = issuer.jwks.keys[0]!.kid;
    let published = issuer.jwks.keys;
    const { verifier, clock } = aVerifier({ maxAgeMs: 1000, refetchCooldownMs: 1000 }, () => published);
    const token = await issuer.user("user-10");
    await verifier.verify(token);
    // The same kid now names another key: the remembered verification no longer holds.
    published = impostor.jwks.keys.map((key) => ({ ...key, kid }));
    clock.now += 1000;
    expect((await refusal(verifier.verify(token))).code).toBe("unauthenticated");
    expect(signatureChecks()).toBe(2);
  });

  it("leaves revocation to every call: a remembered token is refused once revoked", async () => {
    const { verifier } = aVerifier();
    const revocations = createTokenRevocations({
      redis: client,
      accessTokenTtlSeconds: 900,
      logger: logs.logger,
    });
    const checked = withRevocationCheck(verifier, (claims) => revocations.isRevoked(claims));
    const sid = `s-${Date.now()}`;
    const token = await issuer.sign({ sub: "user-11", extra: { sid } });
    await expect(checked.verify(token)).resolves.toMatchObject({ subject: "user-11" });
    await expect(checked.verify(token)).resolves.toMatchObject({ subject: "user-11" });
    expect(signatureChecks()).toBe(1);

    await revocations.revokeSessions([sid]);
    expect(await refusal(checked.verify(token))).toMatchObject({
      code: "unauthenticated",
      reason: "TOKEN_REVOKED",
    });
    expect(await refusal(checked.verify(token))).toMatchObject({ reason: "TOKEN_REVOKED" });
    // Refused by the revocation list, not by a second signature check.
    expect(signatureChecks()).toBe(1);
  });
});

describe("createVerifiedTokenCache", () => {
  it("never holds more than maxEntries, however many distinct tokens arrive", () => {
    const cache = createVerifiedTokenCache<number>({ maxEntries: 100 });
    const expiresAt = Date.now() + 60_000;
    for (let i = 0; i < 10_000; i++) cache.set(`token-${i}`, i, { expiresAt });
    expect(cache.size).toBe(100);
    expect(cache.get("token-0")).toBeUndefined();
    expect(cache.get("token-9999")).toBe(9999);
    expect(cache.get("token-9900")).toBe(9900);
    expect(cache.get("token-9899")).toBeUndefined();
  });

  it("remembers nothing with maxEntries 0, nor an already expired token", () => {
    const off = createVerifiedTokenCache<number>({ maxEntries: 0 });
    off.set("t", 1, { expiresAt: Date.now() + 60_000 });
    expect(off.size).toBe(0);
    const cache = createVerifiedTokenCache<number>({ now: () => 5000 });
    cache.set("t", 1, { expiresAt: 5000 });
    expect(cache.size).toBe(0);
  });

  it("forgets an entry once it expired", () => {
    let now = 0;
    const cache = createVerifiedTokenCache<string>({ now: () => now });
    cache.set("t", "v", { expiresAt: 1000, notBefore: 0 });
    now = 999;
    expect(cache.get("t")).toBe("v");
    now = 1000;
    expect(cache.get("t")).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});

describe("withVerifiedTokenCache (for a verifier the kit did not build)", () => {
  function counting(inner: TokenVerifier) {
    let calls = 0;
    const verifier: TokenVerifier = {
      verify(token) {
        calls++;
        return inner.verify(token);
      },
    };
    return { verifier, calls: () => calls };
  }

  it("verifies a token once, then answers from memory until maxTtlMs (60 s by default) or exp", async () => {
    let now = Date.now();
    const { verifier, calls } = counting(issuer.verifier);
    const cache = withVerifiedTokenCache(verifier, { now: () => now });
    const token = await issuer.user("user-12");
    const first = await cache.verify(token);
    now += 59_999;
    expect(await cache.verify(token)).toBe(first);
    expect(calls()).toBe(1);
    now += 1;
    await cache.verify(token);
    expect(calls()).toBe(2);
  });

  it("never remembers refusals, shares concurrent verifications, and holds at most maxEntries", async () => {
    const { verifier, calls } = counting(issuer.verifier);
    const cache = withVerifiedTokenCache(verifier, { maxEntries: 2 });
    const forged = tampered(await issuer.user("user-13"), { roles: ["admin"] });
    await expect(cache.verify(forged)).rejects.toMatchObject({ code: "unauthenticated" });
    await expect(cache.verify(forged)).rejects.toMatchObject({ code: "unauthenticated" });
    expect(calls()).toBe(2);

    const [a, b, c] = await Promise.all([issuer.user("a"), issuer.user("b"), issuer.user("c")]);
    const principals: Principal[] = await Promise.all([cache.verify(a), cache.verify(a), cache.verify(a)]);
    expect(new Set(principals).size).toBe(1);
    expect(calls()).toBe(3);
    for (const token of [b, c, b, c]) await cache.verify(token);
    expect(calls()).toBe(5);
    await cache.verify(a);
    expect(calls()).toBe(6);
  });
});
