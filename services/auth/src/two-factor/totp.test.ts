import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { base32Decode, base32Encode, matchingStep, otpauthUri, timeStep, totpCode } from "./totp.js";

// RFC 6238 Appendix B, SHA-1 rows: the 20-byte ASCII secret "12345678901234567890", 8 digits.
const RFC_SECRET = Buffer.from("12345678901234567890", "ascii");

describe("totpCode", () => {
  it.each([
    [59, "94287082"],
    [1111111109, "07081804"],
    [1111111111, "14050471"],
    [1234567890, "89005924"],
    [2000000000, "69279037"],
    [20000000000, "65353130"],
  ])("matches RFC 6238 at T=%i", (seconds, expected) => {
    expect(totpCode(RFC_SECRET, timeStep(seconds * 1000), 8)).toBe(expected);
  });

  it("gives 6 digits by default (the last 6 of the 8-digit value)", () => {
    expect(totpCode(RFC_SECRET, timeStep(59_000))).toBe("287082");
  });
});

describe("matchingStep", () => {
  const secret = randomBytes(20);
  const now = 1_700_000_000_000;

  it("accepts the current code and one step of drift either way, nothing further", () => {
    const step = timeStep(now);
    expect(matchingStep(secret, totpCode(secret, step), now)).toBe(step);
    expect(matchingStep(secret, totpCode(secret, step - 1), now)).toBe(step - 1);
    expect(matchingStep(secret, totpCode(secret, step + 1), now)).toBe(step + 1);
    expect(matchingStep(secret, totpCode(secret, step - 2), now)).toBeUndefined();
    expect(matchingStep(secret, totpCode(secret, step + 2), now)).toBeUndefined();
  });

  it("refuses anything that is not six digits", () => {
    expect(matchingStep(secret, "", now)).toBeUndefined();
    expect(matchingStep(secret, "12345", now)).toBeUndefined();
    expect(matchingStep(secret, "1234567", now)).toBeUndefined();
    expect(matchingStep(secret, "12345a", now)).toBeUndefined();
  });
});

describe("base32", () => {
  it("follows RFC 4648 and round-trips", () => {
    expect(base32Encode(Buffer.from("foobar"))).toBe("MZXW6YTBOI");
    expect(base32Decode("MZXW6YTBOI").toString()).toBe("foobar");
    const data = randomBytes(20);
    expect(base32Decode(base32Encode(data)).equals(data)).toBe(true);
    expect(base32Encode(data)).toHaveLength(32);
  });
});

describe("otpauthUri", () => {
  it("carries the secret, issuer and parameters", () => {
    const uri = new URL(otpauthUri({ secret: RFC_SECRET, account: "ada@example.com", issuer: "Zero" }));
    expect(uri.protocol).toBe("otpauth:");
    expect(uri.host).toBe("totp");
    expect(decodeURIComponent(uri.pathname)).toBe("/Zero:ada@example.com");
    expect(Object.fromEntries(uri.searchParams)).toEqual({
      secret: base32Encode(RFC_SECRET),
      issuer: "Zero",
      algorithm: "SHA1",
      digits: "6",
      period: "30",
    });
  });
});
