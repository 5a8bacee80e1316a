import argon2 from "argon2";
import { describe, expect, it } from "vitest";
import {
  characterCount,
  createPasswordHasher,
  emailProblem,
  nameProblem,
  newPasswordProblem,
  normaliseEmail,
  OWASP_ARGON2,
  passwordProblem,
} from "./credentials.js";

describe("normaliseEmail", () => {
  it("trims and lower-cases", () => {
    expect(normaliseEmail("  Foo@Example.COM ")).toBe("foo@example.com");
  });
});

describe("emailProblem", () => {
  it.each([
    "a@b.co",
    "first.last+tag@sub.example.org",
    `${"l".repeat(64)}@example.com`,
    `a@${"d".repeat(240)}.com`,
  ])("accepts %s", (email) => {
    expect(emailProblem(email)).toBeUndefined();
  });

  it.each([
    ["", "is required"],
    ["no-at.example.com", "exactly one @"],
    ["two@@example.com", "exactly one @"],
    ["a@b@example.com", "exactly one @"],
    ["@example.com", "before the @"],
    ["a@localhost", "domain with a dot"],
    ["a@.com", "domain with a dot"],
    ["a@example.", "domain with a dot"],
    ["a@exa..mple.com", "domain with a dot"],
    ["a b@example.com", "spaces"],
    ["a\u0000b@example.com", "control"],
    [`${"l".repeat(65)}@example.com`, "at most 64"],
    [`a@${"d".repeat(250)}.com`, "at most 254"],
  ])("rejects %j (%s)", (email, expected) => {
    expect(emailProblem(email)).toContain(expected);
  });
});

describe("passwordProblem", () => {
  it("counts code points, not UTF-16 units", () => {
    // 12 emoji are 24 UTF-16 units but 12 characters.
    expect(characterCount("😀".repeat(12))).toBe(12);
    expect(passwordProblem("😀".repeat(12))).toBeUndefined();
    expect(passwordProblem("😀".repeat(11))).toContain("at least 12");
    expect(passwordProblem("😀".repeat(128))).toBeUndefined();
    expect(passwordProblem("😀".repeat(129))).toContain("at most 128");
  });

  it("enforces 12..128 characters and nothing else", () => {
    expect(passwordProblem("")).toBe("is required");
    expect(passwordProblem("a".repeat(11))).toContain("at least 12");
    expect(passwordProblem("a".repeat(12))).toBeUndefined();
    expect(passwordProblem("a".repeat(128))).toBeUndefined();
    expect(passwordProblem("a".repeat(129))).toContain("at most 128");
  });
});

describe("nameProblem", () => {
  it("allows up to 100 characters without control characters", () => {
    expect(nameProblem("")).toBeUndefined();
    expect(nameProblem("Zoë".padEnd(100, "x"))).toBeUndefined();
    expect(nameProblem("x".repeat(101))).toContain("at most 100");
    expect(nameProblem("a\nb")).toContain("control");
  });
});

describe("createPasswordHasher", () => {
  const hasher = createPasswordHasher({ ...OWASP_ARGON2, maxConcurrent: 2 });

  it("hashes with argon2id at the configured parameters and verifies", async () => {
    const hash = await hasher.hash("correct horse battery staple");
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(hash).not.toContain("correct horse");
    await expect(hasher.verify(hash, "correct horse battery staple")).resolves.toBe(true);
    await expect(hasher.verify(hash, "wrong horse battery staple")).resolves.toBe(false);
  });

  it("answers false for a hash it cannot parse instead of throwing", async () => {
    await expect(hasher.verify("not-a-hash", "whatever password")).resolves.toBe(false);
  });

  it("verifyNothing costs about as much as a real verification", async () => {
    const hash = await hasher.hash("some password here");
    await hasher.verifyNothing("warm up the dummy hash");
    const time = async (f: () => Promise<unknown>) => {
      const start = performance.now();
      await f();
      return performance.now() - start;
    };
    const real = await time(() => hasher.verify(hash, "another password"));
    const dummy = await time(() => hasher.verifyNothing("another password"));
    // Loose bounds: the machine is shared; an unpadded path would be ~0 ms.
    expect(dummy).toBeGreaterThan(real / 3);
  });

  it("refuses parameters below the OWASP minimum", () => {
    expect(() => createPasswordHasher({ ...OWASP_ARGON2, memoryCost: 4096, maxConcurrent: 1 })).toThrow(
      /memoryCost/,
    );
    expect(() => createPasswordHasher({ ...OWASP_ARGON2, timeCost: 1, maxConcurrent: 1 })).toThrow(
      /timeCost/,
    );
  });

  it("runs at most maxConcurrent hashes at once", async () => {
    let running = 0;
    let peak = 0;
    const original = argon2.hash;
    const limited = createPasswordHasher({ ...OWASP_ARGON2, maxConcurrent: 2 });
    // Count overlap by wrapping the library call the hasher makes.
    const spy = async (...args: Parameters<typeof argon2.hash>) => {
      running++;
      peak = Math.max(peak, running);
      try {
        return await original(...args);
      } finally {
        running--;
      }
    };
    (argon2 as { hash: typeof argon2.hash }).hash = spy as typeof argon2.hash;
    try {
      await Promise.all(Array.from({ length: 6 }, (_, i) => limited.hash(`password number ${i}`)));
    } finally {
      (argon2 as { hash: typeof argon2.hash }).hash = original;
    }
    expect(peak).toBeLessThanOrEqual(2);
    expect(peak).toBeGreaterThan(0);
  });
});

describe("needsRehash", () => {
  it("is false for the configured parameters and true after they are raised or for another scheme", async () => {
    const current = createPasswordHasher({ ...OWASP_ARGON2, maxConcurrent: 2 });
    const stronger = createPasswordHasher({ ...OWASP_ARGON2, timeCost: 3, maxConcurrent: 2 });
    const hash = await current.hash("some password here");
    expect(current.needsRehash(hash)).toBe(false);
    expect(stronger.needsRehash(hash)).toBe(true);
    const argon2i = await argon2.hash("some password here", { type: argon2.argon2i, ...OWASP_ARGON2 });
    expect(current.needsRehash(argon2i)).toBe(true);
    expect(current.needsRehash("$2b$10$not-argon2")).toBe(true);
  });
});

describe("newPasswordProblem", () => {
  it("checks the length first, then guessability", () => {
    expect(newPasswordProblem("short")).toContain("at least 12");
    expect(newPasswordProblem("password1234")).toContain("common");
    expect(newPasswordProblem("correct horse battery staple")).toBeUndefined();
  });
});

describe("a hashing flood", () => {
  it("is refused with `unavailable` beyond the queue bound, while queued work still completes", async () => {
    const hasher = createPasswordHasher({ ...OWASP_ARGON2, maxConcurrent: 1, maxQueued: 2 });
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => hasher.hash(`flood password ${i}`)),
    );
    // The dummy hash made at construction holds the slot; two wait; the rest are refused at once.
    const refused = results.filter((r) => r.status === "rejected");
    expect(results.filter((r) => r.status === "fulfilled").length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeGreaterThanOrEqual(3);
    for (const r of refused)
      expect(r.reason).toMatchObject({
        code: "unavailable",
        reason: "HASHING_BUSY",
      });
  });
});
