import { describe, expect, it } from "vitest";
import { DomainError } from "./errors.js";
import { createPageTokens, MAX_PAGE_SIZE, pageSizeOf } from "./page-token.js";

const id = "0193a1b2-0000-7000-8000-000000000001";

/** The error `decode` threw, for assertions on its code and field violation. */
function refusal(decode: () => unknown): DomainError {
  try {
    decode();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the token to be refused");
}

describe("createPageTokens", () => {
  it("round-trips the cursor for the same list and filters; an empty token is the first page", () => {
    const tokens = createPageTokens({
      list: "payments",
      filters: { currency: "EUR" },
      cursor: { id: "uuid" },
    });
    expect(tokens.decode(tokens.encode({ id }))).toEqual({ id });
    expect(tokens.decode("")).toBeUndefined();

    const at = new Date("2025-01-02T03:04:05.678Z");
    const sessions = createPageTokens({ list: "sessions", cursor: { at: "timestamp", id: "uuid" } });
    expect(sessions.decode(sessions.encode({ at, id }))).toEqual({ at, id });

    const templates = createPageTokens({ list: "templates", cursor: { name: "text", locale: "text" } });
    expect(templates.decode(templates.encode({ name: "welcome", locale: "en-GB" }))).toEqual({
      name: "welcome",
      locale: "en-GB",
    });
  });

  it("is opaque base64url that does not carry the filter values", () => {
    const token = createPageTokens({
      list: "deliveries",
      filters: { recipient: "ada@example.com" },
      cursor: { id: "uuid" },
    }).encode({ id });
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(token, "base64url").toString()).not.toContain("ada@example.com");
  });

  it("refuses a token issued for other filters or another list", () => {
    const token = createPageTokens({
      list: "payments",
      filters: { currency: "EUR" },
      cursor: { id: "uuid" },
    }).encode({ id });
    for (const other of [
      createPageTokens({ list: "payments", filters: { currency: "USD" }, cursor: { id: "uuid" } }),
      createPageTokens({ list: "refunds", filters: { currency: "EUR" }, cursor: { id: "uuid" } }),
    ]) {
      const error = refusal(() => other.decode(token));
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/other filters/);
      expect(error.fieldViolations?.map((v) => v.field)).toEqual(["page_token"]);
    }
  });

  it.each([
    ["garbage", "garbage!"],
    ["not JSON", "eyJ9"],
    ["a token of another format", Buffer.from("a1:" + id).toString("base64url")],
    ["a cursor that is not a UUID", Buffer.from('{"s":"x","p":{"id":"not-a-uuid"}}').toString("base64url")],
    ["a missing field", Buffer.from('{"s":"x","p":{}}').toString("base64url")],
    ["an overlong token", "A".repeat(5000)],
  ])("refuses %s with invalid_argument on page_token", (_what, token) => {
    const error = refusal(() => createPageTokens({ list: "l", cursor: { id: "uuid" } }).decode(token));
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/not a token this list issued/);
    expect(error.fieldViolations).toEqual([{ field: "page_token", description: "is malformed" }]);
  });

  it("refuses a timestamp cursor that is not an ISO time", () => {
    const tokens = createPageTokens({ list: "sessions", cursor: { at: "timestamp", id: "uuid" } });
    const good = JSON.parse(Buffer.from(tokens.encode({ at: new Date(0), id }), "base64url").toString()) as {
      s: string;
    };
    const bad = Buffer.from(JSON.stringify({ s: good.s, p: { at: "yesterday", id } })).toString("base64url");
    expect(() => tokens.decode(bad)).toThrow(/page_token/);
  });

  it("pages a read one row ahead: the token exists only when the extra row does", () => {
    const tokens = createPageTokens({ list: "addresses", cursor: { id: "uuid" } });
    const rows = ["1", "2", "3"].map((n) => ({ id: `0193a1b2-0000-7000-8000-00000000000${n}` }));
    const full = tokens.page(rows, 2, (row) => ({ id: row.id }));
    expect(full.items).toEqual(rows.slice(0, 2));
    expect(tokens.decode(full.nextPageToken)).toEqual({ id: rows[1]!.id });
    const last = tokens.page(rows.slice(2), 2, (row) => ({ id: row.id }));
    expect(last).toEqual({ items: rows.slice(2), nextPageToken: "" });
  });
});

describe("pageSizeOf", () => {
  it("sizes pages: 0 is the default, larger than the maximum is lowered, negative is refused", () => {
    expect(pageSizeOf(0)).toBe(20);
    expect(pageSizeOf(0, { default: 50 })).toBe(50);
    expect(pageSizeOf(7)).toBe(7);
    expect(pageSizeOf(1_000_000)).toBe(MAX_PAGE_SIZE);
    expect(() => pageSizeOf(-1)).toThrow(/page_size/);
  });
});
