import { describe, expect, it } from "vitest";
import { checkAvatarUrl, checkLocale, namesFromRegistration } from "./profile.js";

describe("checkAvatarUrl", () => {
  it.each([
    ["", { value: "" }],
    ["https://img.example.com/a b.png", { value: "https://img.example.com/a%20b.png" }],
    ["HTTPS://IMG.example.com/x", { value: "https://img.example.com/x" }],
  ])("accepts %j", (input, expected) => expect(checkAvatarUrl(input)).toEqual(expected));

  it.each([
    ["http://img.example.com/a.png", /https/],
    ["data:image/png;base64,AAAA", /https/],
    ["file:///etc/passwd", /https/],
    ["https://user:pw@img.example.com/", /user name or password/],
    ["https://user@img.example.com/", /user name or password/],
    ["img.example.com/a.png", /absolute https URL/],
    [`https://x.example/${"a".repeat(2100)}`, /2048/],
  ])("refuses %j", (input, problem) => {
    const result = checkAvatarUrl(input);
    expect("problem" in result && result.problem).toMatch(problem);
  });
});

describe("checkLocale", () => {
  it.each([
    ["en", "en"],
    ["en-gb", "en-GB"],
    ["zh-hant-tw", "zh-Hant-TW"],
    ["de-DE-u-co-phonebk", "de-DE-u-co-phonebk"],
  ])("canonicalises %j to %j", (input, canonical) =>
    expect(checkLocale(input)).toEqual({ value: canonical }),
  );

  it.each(["en_US", "x", "en-", "english please", "a".repeat(36), "<script>"])("refuses %j", (input) => {
    expect(checkLocale(input)).toHaveProperty("problem");
  });
});

describe("namesFromRegistration", () => {
  it("trims, removes control characters and cuts names to the profile's limits", () => {
    expect(namesFromRegistration("  Ada\u0000 ", "n".repeat(150))).toEqual({
      first_name: "Ada",
      last_name: "n".repeat(100),
    });
  });
});
