import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deriveKey, openSecret, sealSecret } from "./sealed-secret.js";

describe("sealSecret / openSecret", () => {
  const kek = randomBytes(32);
  const secret = randomBytes(48);

  it("round-trips and never contains the plain secret", () => {
    const sealed = sealSecret(secret, kek, "kid-1");
    expect(sealed.includes(secret)).toBe(false);
    expect(openSecret(sealed, kek, "kid-1", "test").equals(secret)).toBe(true);
  });

  it("uses a fresh IV each time", () => {
    expect(sealSecret(secret, kek, "kid-1").equals(sealSecret(secret, kek, "kid-1"))).toBe(false);
  });

  it("refuses the wrong key, another context and altered bytes", () => {
    const sealed = sealSecret(secret, kek, "kid-1");
    expect(() => openSecret(sealed, randomBytes(32), "kid-1", "test")).toThrow(/cannot decrypt/);
    expect(() => openSecret(sealed, kek, "kid-2", "test")).toThrow(/cannot decrypt/);
    const altered = Buffer.from(sealed);
    altered[altered.length - 1] = (altered.at(-1) ?? 0) ^ 1;
    expect(() => openSecret(altered, kek, "kid-1", "test")).toThrow(/cannot decrypt/);
    expect(() => openSecret(Buffer.of(9, 1, 2), kek, "kid-1", "test")).toThrow(/format/);
  });

  it("refuses a key-encryption key that is not 32 bytes", () => {
    expect(() => sealSecret(secret, randomBytes(16), "kid-1")).toThrow(/32 bytes/);
  });
});

describe("deriveKey", () => {
  it("gives each purpose its own stable key, none equal to the key-encryption key", () => {
    const kek = randomBytes(32);
    const totp = deriveKey(kek, "totp-secrets");
    expect(totp).toHaveLength(32);
    expect(deriveKey(kek, "totp-secrets").equals(totp)).toBe(true);
    expect(deriveKey(kek, "recovery-codes").equals(totp)).toBe(false);
    expect(totp.equals(kek)).toBe(false);
  });
});
