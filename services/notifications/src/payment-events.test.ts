import { describe, expect, it } from "vitest";
import { formatMoney } from "./payment-events.js";

describe("formatMoney", () => {
  it("formats minor units exactly with the currency's own decimals", () => {
    expect(formatMoney(1234n, "EUR")).toBe("€12.34");
    expect(formatMoney(5n, "USD")).toBe("$0.05");
    expect(formatMoney(1234n, "JPY")).toBe("¥1,234");
    // ICU separates the code from the amount with a no-break space.
    expect(formatMoney(1234n, "KWD")).toBe("KWD\u00a01.234");
    expect(formatMoney(-250n, "GBP")).toBe("-£2.50");
    // Beyond 2^53: no float rounding anywhere.
    expect(formatMoney(1234567890123456789n, "USD")).toBe("$12,345,678,901,234,567.89");
  });

  it("says what it has when the currency is unknown", () => {
    expect(formatMoney(100n, "ZZZZ")).toBe("100 ZZZZ (minor units)");
  });
});
