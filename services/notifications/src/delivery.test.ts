import { describe, expect, it } from "vitest";
import {
  emailProblem,
  fingerprintOf,
  isSecretVariable,
  normaliseEmail,
  redactEmail,
  redactEmailsIn,
  redactVariables,
  retryDelayMs,
  variablesProblem,
} from "./delivery.js";

describe("secret variables", () => {
  it("are the conventional suffixes plus the declared names", () => {
    for (const name of [
      "verification_code",
      "reset_token",
      "api_secret",
      "new_password",
      "code",
      "RESET_CODE",
    ])
      expect(isSecretVariable(name)).toBe(true);
    for (const name of ["first_name", "codename", "expires_in_minutes", "reset_url"])
      expect(isSecretVariable(name)).toBe(false);
    expect(isSecretVariable("reset_url", new Set(["reset_url"]))).toBe(true);
  });

  it("are redacted, the others kept", () => {
    expect(
      redactVariables({ first_name: "Ada", reset_code: "123456", link: "x" }, new Set(["link"])),
    ).toEqual({
      first_name: "Ada",
      reset_code: "[redacted]",
      link: "[redacted]",
    });
  });
});

describe("retryDelayMs", () => {
  const policy = { maxAttempts: 10, baseDelayMs: 1000, maxDelayMs: 60_000 };
  it("doubles per attempt up to the cap, within ±10 %", () => {
    expect(retryDelayMs(1, policy, () => 0.5)).toBe(1000);
    expect(retryDelayMs(3, policy, () => 0.5)).toBe(4000);
    expect(retryDelayMs(20, policy, () => 0.5)).toBe(60_000);
    expect(retryDelayMs(1, policy, () => 0)).toBe(900);
    expect(retryDelayMs(1, policy, () => 1)).toBe(1100);
  });
});

describe("email addresses", () => {
  it("accept ordinary addresses and refuse anything that could carry a second recipient or header", () => {
    expect(emailProblem(normaliseEmail("  Ada@Example.COM "))).toBeUndefined();
    for (const bad of [
      "",
      "ada",
      "ada@",
      "@example.com",
      "a b@example.com",
      "a@example.com,b@example.com",
      "a@example.com\r\nBcc: x@y.z",
      "<a@example.com>",
      "a@localhost",
    ])
      expect(emailProblem(normaliseEmail(bad)), bad).toBeDefined();
    expect(emailProblem(`${"a".repeat(250)}@example.com`)).toMatch(/254/);
  });

  it("are redacted in logs", () => {
    expect(redactEmail("ada@example.com")).toBe("a…@example.com");
    expect(redactEmailsIn("550 5.1.1 <ada.lovelace@example.com>: no such user")).toBe(
      "550 5.1.1 <a…@example.com>: no such user",
    );
  });
});

describe("variablesProblem", () => {
  it("limits names, sizes and counts", () => {
    expect(variablesProblem({ first_name: "Ada" })).toBeUndefined();
    expect(variablesProblem({ "first-name": "Ada" })).toMatch(/invalid name/);
    expect(variablesProblem({ x: "y".repeat(2001) })).toMatch(/2000/);
    expect(
      variablesProblem(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`v${i}`, "x"]))),
    ).toMatch(/50/);
  });
});

describe("fingerprintOf", () => {
  it("ignores key order and sees every value", () => {
    expect(fingerprintOf({ a: 1, b: { c: "x", d: "y" } })).toBe(
      fingerprintOf({ b: { d: "y", c: "x" }, a: 1 }),
    );
    expect(fingerprintOf({ a: 1 })).not.toBe(fingerprintOf({ a: 2 }));
  });
});
