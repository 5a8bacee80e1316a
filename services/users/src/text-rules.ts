// What user-entered text may hold, shared by profiles and addresses. Lengths count code points
// (what a person sees as characters), not UTF-16 units.

// Control characters break logs, CSV exports and terminals; bidirectional overrides let a name
// display as something else ("evil\u202Eexe.txt"). Neither belongs in a name or an address.
const FORBIDDEN = /[\p{Cc}\u202A-\u202E\u2066-\u2069]/u;
// Free text (a bio) may keep line breaks and tabs.
const ALLOWED_IN_MULTI_LINE = /[\n\t]/g;

export interface TextRule {
  max: number;
  required?: boolean;
  multiline?: boolean;
}

/** Trimmed, with Windows line breaks folded into `\n`. */
export function normaliseText(value: string): string {
  return value.replace(/\r\n?/g, "\n").trim();
}

/** The problem with an already normalised value, or undefined when it is acceptable. */
export function textProblem(value: string, rule: TextRule): string | undefined {
  if (value === "") return rule.required === true ? "is required" : undefined;
  const length = [...value].length;
  if (length > rule.max) return `must be at most ${rule.max} characters (got ${length})`;
  const checked = rule.multiline === true ? value.replace(ALLOWED_IN_MULTI_LINE, "") : value;
  if (FORBIDDEN.test(checked)) {
    return rule.multiline === true
      ? "must not contain control characters other than line breaks and tabs"
      : "must not contain line breaks, control characters or bidirectional overrides";
  }
  return undefined;
}
