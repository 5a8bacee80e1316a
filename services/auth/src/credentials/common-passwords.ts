import { dictionary } from "@zxcvbn-ts/language-common";

// Passwords attackers try first (NIST SP 800-63B §5.1.1.2: refuse values "obtained from previous
// breach corpuses" and "commonly-used" ones). The list is the 49,233 most common passwords of
// real breach corpuses, as shipped by @zxcvbn-ts/language-common 3.0.4 (MIT; the data comes from
// Dropbox's zxcvbn). It is checked offline: no password ever leaves the process. Loaded once,
// into a Set, when this module is first imported (≈ 10 ms, a few MB).
const COMMON: ReadonlySet<string> = new Set(dictionary.passwords.map((p) => p.toLowerCase()));

export const COMMON_PASSWORD_COUNT = COMMON.size;

// What people wrap around a common word to pass a length rule: "password1234", "!!iloveyou2024".
const WRAPPING = /^[\d\W_]+|[\d\W_]+$/gu;
const SEPARATORS = /[\s._-]+/gu;

/**
 * Why `password` is too guessable, or undefined. Case-insensitive; besides the list itself it
 * refuses a listed password with digits or symbols around it, one repeated short chunk
 * ("abcabcabcabc"), a plain run of the keyboard or alphabet ("abcdefghijkl", "987654321098"), and
 * the account's own email address or its name part.
 */
export function guessablePasswordProblem(
  password: string,
  context: { email?: string } = {},
): string | undefined {
  const lower = password.toLowerCase();
  const squeezed = lower.replace(SEPARATORS, "");
  for (const candidate of new Set([lower, squeezed])) {
    if (COMMON.has(candidate)) return "is one of the most common passwords: choose another";
    const core = candidate.replace(WRAPPING, "");
    if (core.length >= 4 && COMMON.has(core)) {
      return "is a common password with digits or symbols added: choose another";
    }
  }
  if (/^(.{1,4}?)\1+$/su.test(squeezed)) return "repeats a short pattern: choose another";
  if (isRun(squeezed)) return "is a simple sequence of characters: choose another";
  if (context.email !== undefined && context.email !== "") {
    const email = context.email.toLowerCase();
    const local = email.split("@", 1)[0] ?? "";
    const core = squeezed.replace(WRAPPING, "");
    if (
      core === email ||
      core === email.replace(SEPARATORS, "") ||
      (local.length >= 4 && core === local.replace(SEPARATORS, ""))
    ) {
      return "must not be your email address: choose another";
    }
  }
  return undefined;
}

/** Every character one above (or below) the previous one, digits wrapping 9→0. */
function isRun(s: string): boolean {
  const codes = [...s].map((c) => c.codePointAt(0) ?? 0);
  if (codes.length < 2) return false;
  for (const direction of [1, -1]) {
    let ok = true;
    for (let i = 1; i < codes.length && ok; i++) {
      const prev = codes[i - 1] ?? 0;
      const cur = codes[i] ?? 0;
      const wrapsDigit = direction === 1 ? prev === 0x39 && cur === 0x30 : prev === 0x30 && cur === 0x39;
      ok = cur - prev === direction || wrapsDigit;
    }
    if (ok) return true;
  }
  return false;
}
