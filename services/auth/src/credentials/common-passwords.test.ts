import { describe, expect, it } from "vitest";
import { COMMON_PASSWORD_COUNT, guessablePasswordProblem } from "./common-passwords.js";

describe("guessablePasswordProblem", () => {
  it("loads the whole shipped list", () => {
    expect(COMMON_PASSWORD_COUNT).toBeGreaterThan(40_000);
  });

  it.each([
    ["qwertyuiop12", "most common"],
    ["1qaz2wsx3edc", "most common"],
    ["PasswordPassword", "most common"],
    ["password1234", "most common"],
    ["Password!2024", "digits or symbols added"],
    ["!!iloveyou!!2024", "digits or symbols added"],
    ["monkey 1234567", "digits or symbols added"],
    ["aaaaaaaaaaaa", "repeats"],
    ["abcabcabcabc", "repeats"],
    ["p".repeat(128), "repeats"],
    ["abcdefghijklmn", "sequence"],
    ["987654321098", "sequence"],
  ])("refuses %j (%s)", (password, expected) => {
    expect(guessablePasswordProblem(password)).toContain(expected);
  });

  it("refuses the account's own email or its name part", () => {
    expect(
      guessablePasswordProblem("ada.lovelace@example.com", { email: "ada.lovelace@example.com" }),
    ).toContain("email");
    expect(guessablePasswordProblem("Ada.Lovelace1815", { email: "ada.lovelace@example.com" })).toContain(
      "email",
    );
  });

  it.each([
    "correct horse battery staple",
    "a long enough password",
    "zero-demo-password",
    "Tr0ub4dor&3-horse-staple",
    "😀".repeat(3) + "sunlit meadow",
  ])("accepts %j", (password) => {
    expect(guessablePasswordProblem(password, { email: "someone@example.com" })).toBeUndefined();
  });
});
