import { describe, expect, it } from "vitest";
import { cardBrand, parseCard, passesLuhn, summariseCard } from "./card.js";

const valid = { number: "4242 4242 4242 4242", expMonth: 12, expYear: 2031, cvc: "123" };
const now = new Date("2026-11-21T00:00:00Z");

describe("parseCard", () => {
  it("normalises the number and keeps it in memory only", () => {
    expect(parseCard(valid, now)).toEqual({
      number: "4242424242424242",
      expMonth: 12,
      expYear: 2031,
      cvc: "123",
    });
    expect(parseCard({ ...valid, number: "4242-4242-4242-4242" }, now).number).toBe("4242424242424242");
  });

  it("names every bad field without echoing the number", () => {
    try {
      parseCard({ number: "4242424242424241", expMonth: 0, expYear: 26, cvc: "1" }, now);
      expect.unreachable();
    } catch (error) {
      const violations = (error as { fieldViolations: { field: string }[] }).fieldViolations.map(
        (v) => v.field,
      );
      expect(violations.sort()).toEqual(["card.cvc", "card.exp_month", "card.exp_year", "card.number"]);
      expect(JSON.stringify(error) + String(error)).not.toContain("424242424242");
    }
  });

  it("accepts a card until the end of its expiry month", () => {
    expect(() => parseCard({ ...valid, expMonth: 11, expYear: 2026 }, now)).not.toThrow();
    expect(() => parseCard({ ...valid, expMonth: 10, expYear: 2026 }, now)).toThrow(/expired/);
  });
});

describe("card numbers", () => {
  it("checks the Luhn digit", () => {
    expect(passesLuhn("4242424242424242")).toBe(true);
    expect(passesLuhn("4242424242424241")).toBe(false);
    expect(passesLuhn("378282246310005")).toBe(true);
  });

  it.each([
    ["4242424242424242", "visa"],
    ["5555555555554444", "mastercard"],
    ["2223003122003222", "mastercard"],
    ["378282246310005", "amex"],
    ["6011111111111117", "discover"],
    ["3566002020360505", "jcb"],
    ["36227206271667", "diners"],
    ["6200000000000005", "unionpay"],
    ["9999999999999995", "unknown"],
  ])("recognises %s as %s", (number, brand) => {
    expect(cardBrand(number)).toBe(brand);
  });

  it("summarises as brand and last four", () => {
    expect(summariseCard("5555555555554444")).toEqual({ brand: "mastercard", last4: "4444" });
  });
});
