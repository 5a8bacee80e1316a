import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { openPrivateKey, sealPrivateKey } from "./signing-keys.js";

describe("sealPrivateKey / openPrivateKey", () => {
  const kek = randomBytes(32);
  const secret = randomBytes(48);

  it("round-trips and never contains the plain key", () => {
    const sealed = sealPrivateKey(secret, kek, "kid-1");
    expect(sealed.includes(secret)).toBe(false);
    expect(openPrivateKey(sealed, kek, "kid-1").equals(secret)).toBe(true);
  });

  it("uses a fresh IV each time", () => {
    expect(sealPrivateKey(secret, kek, "kid-1").equals(sealPrivateKey(secret, kek, "kid-1"))).toBe(false);
  });

  it("refuses the wrong key, another kid and altered bytes", () => {
    const sealed = sealPrivateKey(secret, kek, "kid-1");
    expect(() => openPrivateKey(sealed, randomBytes(32), "kid-1")).toThrow(/cannot decrypt/);
    expect(() => openPrivateKey(sealed, kek, "kid-2")).toThrow(/cannot decrypt/);
    const altered = Buffer.from(sealed);
    altered[altered.length - 1] = (altered.at(-1) ?? 0) ^ 1;
    expect(() => openPrivateKey(altered, kek, "kid-1")).toThrow(/cannot decrypt/);
    expect(() => openPrivateKey(Buffer.of(9, 1, 2), kek, "kid-1")).toThrow(/format/);
  });

  it("refuses a key-encryption key that is not 32 bytes", () => {
    expect(() => sealPrivateKey(secret, randomBytes(16), "kid-1")).toThrow(/32 bytes/);
  });
});
