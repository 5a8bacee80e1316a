// What the OpenAPI document takes from a proto comment besides its text: a summary (the first
// sentence), the errors a method documents, and a field's example.

/**
 * A method comment may end with an errors section, one item per gRPC status it answers beyond the
 * obvious (wrapped lines continue the item; the section ends at a blank line):
 *
 *     // Errors:
 *     // - UNAUTHENTICATED: the email or the password is wrong (one answer for both).
 *     // - INVALID_ARGUMENT (HTTP 422): the key was used with other parameters.
 *
 * `(HTTP nnn)` is for a status the service overrides with ErrorInfo metadata `http_status`;
 * otherwise the standard gRPC → HTTP table gives it. The section reaches gRPC and Connect users
 * through the generated code's doc comments as well; the OpenAPI document turns it into responses.
 */
export interface DocumentedError {
  /** The gRPC status name, `UNAUTHENTICATED`. */
  readonly status: string;
  /** `(HTTP nnn)` when given. */
  readonly httpStatus: number | undefined;
  readonly text: string;
}

export interface CommentWithErrors {
  /** The comment without its errors section. */
  readonly text: string;
  readonly errors: readonly DocumentedError[];
  /** Items of the section that do not follow the form (the section then stays in `text`). */
  readonly malformed: readonly string[];
}

const ERRORS_HEADING = /^Errors:\s*$/;
const ERROR_ITEM = /^-\s+([A-Z][A-Z_]*)(?:\s+\(HTTP\s+(\d{3})\))?:\s*(\S.*)$/s;

export function splitErrorsSection(
  comment: string,
  knownStatus: (name: string) => boolean,
): CommentWithErrors {
  const lines = comment.split("\n");
  const start = lines.findIndex(
    (line, i) => ERRORS_HEADING.test(line.trim()) && (i === 0 || lines[i - 1]!.trim() === ""),
  );
  if (start < 0) return { text: comment, errors: [], malformed: [] };
  let end = start + 1;
  while (end < lines.length && lines[end]!.trim() !== "") end++;

  const items: string[] = [];
  for (const line of lines.slice(start + 1, end)) {
    const trimmed = line.trim();
    if (trimmed.startsWith("- ") || items.length === 0) items.push(trimmed);
    else items[items.length - 1] += ` ${trimmed}`;
  }
  const errors: DocumentedError[] = [];
  const malformed: string[] = [];
  for (const item of items) {
    const match = ERROR_ITEM.exec(item);
    if (!match || !knownStatus(match[1]!)) {
      malformed.push(item);
      continue;
    }
    errors.push({
      status: match[1]!,
      httpStatus: match[2] === undefined ? undefined : Number(match[2]),
      text: match[3]!,
    });
  }
  if (malformed.length > 0) return { text: comment, errors: [], malformed };
  const text = [...lines.slice(0, start), ...lines.slice(end)]
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
  return { text, errors, malformed };
}

// Abbreviations a sentence does not end at ("GDPR art. 15", "e.g. `0.1s`").
const ABBREVIATION = /(?:^|[\s(])(?:e\.g|i\.e|etc|art|arts|vs|cf|approx|incl|resp)\.$/i;

/**
 * The first sentence of the first paragraph, on one line: Swagger UI shows a summary as plain text
 * beside the path. A full stop (or `!`, `?`) followed by a space ends a sentence unless it is
 * inside parentheses, brackets or backticks, or ends a common abbreviation.
 */
export function firstSentence(comment: string): string {
  const paragraph = comment.trim().split(/\n\s*\n/)[0] ?? "";
  const flat = paragraph.replace(/\s+/g, " ").trim();
  let depth = 0;
  let code = false;
  for (let i = 0; i < flat.length; i++) {
    const c = flat[i];
    if (c === "`") code = !code;
    if (code) continue;
    if (c === "(" || c === "[") depth++;
    else if ((c === ")" || c === "]") && depth > 0) depth--;
    else if ((c === "." || c === "!" || c === "?") && depth === 0 && flat[i + 1] === " ") {
      const head = flat.slice(0, i + 1);
      if (c === "." && ABBREVIATION.test(head)) continue;
      return head;
    }
  }
  return flat;
}

/** The `x` of "e.g. `x`" in a field's comment: an example the field's author gave. */
export function exampleInComment(comment: string | undefined): string | undefined {
  if (comment === undefined) return undefined;
  return /\be\.g\.,?\s+`([^`]+)`/.exec(comment)?.[1];
}
