import type { DomainError } from "@zero/kit/errors";
import { describe, expect, it } from "vitest";
import { targetUserId } from "./user-access.js";

const me = "0190a9d4-1b2c-7def-8123-456789abcdef";
const other = "0190a9d4-1b2c-7def-8123-000000000000";
const customer = { subject: me, roles: ["customer"], kind: "user" as const };
const admin = { subject: me, roles: ["customer", "admin"], kind: "user" as const };
const service = { subject: "service:orders", roles: ["service"], kind: "service" as const };

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return (error as DomainError).code;
  }
  return "ok";
};

describe("targetUserId", () => {
  it("resolves `me` and the caller's own id (any case) to the caller", () => {
    expect(targetUserId(customer, "me", "write")).toBe(me);
    expect(targetUserId(customer, me.toUpperCase(), "write")).toBe(me);
  });

  it("answers another user's id with not_found for a customer, reads only for an admin", () => {
    expect(code(() => targetUserId(customer, other, "read"))).toBe("not_found");
    expect(code(() => targetUserId(customer, other, "write"))).toBe("not_found");
    expect(targetUserId(admin, other, "read")).toBe(other);
    expect(code(() => targetUserId(admin, other, "write"))).toBe("permission_denied");
  });

  it("refuses what is neither `me` nor a UUID, and gives a service no `me`", () => {
    expect(code(() => targetUserId(customer, "", "read"))).toBe("invalid_argument");
    expect(code(() => targetUserId(customer, "ME ", "read"))).toBe("invalid_argument");
    expect(code(() => targetUserId(customer, "1; drop table", "read"))).toBe("invalid_argument");
    expect(code(() => targetUserId(service, "me", "read"))).toBe("not_found");
    expect(code(() => targetUserId(service, other, "read"))).toBe("not_found");
  });
});
