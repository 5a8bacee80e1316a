import { describe, expect, it } from "vitest";
import { currencyCodes, maxAmount, minorUnitExponent, normaliseCurrency } from "./currency.js";

describe("ISO 4217", () => {
  it("normalises codes in circulation and refuses the rest", () => {
    expect(normaliseCurrency(" eur ")).toBe("EUR");
    for (const code of ["XYZ", "HRK", "CUC", "CLF", "XAU", "XTS", "EURO", "", "eu"])
      expect(normaliseCurrency(code)).toBeUndefined();
  });

  it("knows the minor-unit exponents, ISO's not CLDR's", () => {
    expect([
      minorUnitExponent("EUR"),
      minorUnitExponent("JPY"),
      minorUnitExponent("KWD"),
      minorUnitExponent("HUF"),
    ]).toEqual([2, 0, 3, 2]);
    expect(maxAmount("EUR")).toBe(100_000_000n);
    expect(maxAmount("JPY")).toBe(1_000_000n);
    expect(maxAmount("BHD")).toBe(1_000_000_000n);
  });

  it("lists only codes ICU knows as currencies (a guard against typos in the table)", () => {
    const icu = new Set(Intl.supportedValuesOf("currency"));
    // VED (2021) is in ISO 4217 but not yet in every ICU release.
    const missing = currencyCodes().filter((c) => !icu.has(c) && c !== "VED");
    expect(missing).toEqual([]);
    expect(currencyCodes().length).toBeGreaterThan(150);
  });
});
