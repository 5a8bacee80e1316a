import { ConfigError } from "@zero/kit/config";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { defaultHashConcurrency, loadConfig } from "./config.js";

const key = randomBytes(32).toString("base64");

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    const c = loadConfig({ AUTH_KEY_ENCRYPTION_KEY: key });
    expect(c).toMatchObject({
      port: 9001,
      issuer: "zero-auth",
      audience: "zero",
      accessTokenTtlSeconds: 900,
      refreshTokenTtlSeconds: 604_800,
      argon2: {
        memoryCost: 19456,
        timeCost: 2,
        parallelism: 1,
        maxConcurrent: defaultHashConcurrency(),
        maxQueued: 256,
      },
    });
    expect(c.keyEncryptionKey.equals(Buffer.from(key, "base64"))).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.argon2)).toBe(true);
  });

  it("reports every problem at once, the key's included, without echoing the key", () => {
    const badKey = randomBytes(16).toString("base64");
    let error: unknown;
    try {
      loadConfig({ AUTH_KEY_ENCRYPTION_KEY: badKey, PORT: "x", AUTH_ARGON2_MEMORY_KIB: "4096" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(3);
    expect(problems.join("\n")).toMatch(/PORT/);
    expect(problems.join("\n")).toMatch(/AUTH_ARGON2_MEMORY_KIB must be at least 19456/);
    expect(problems.join("\n")).toMatch(/AUTH_KEY_ENCRYPTION_KEY must be 32 random bytes/);
    expect((error as Error).message).not.toContain(badKey);
  });

  it("requires the key-encryption key", () => {
    expect(() => loadConfig({})).toThrow(/AUTH_KEY_ENCRYPTION_KEY is required/);
  });
});
