// The `google.api.http` path template grammar (third_party/proto/google/api/http.proto):
//
//     Template = "/" Segments [ Verb ] ;
//     Segments = Segment { "/" Segment } ;
//     Segment  = "*" | "**" | LITERAL | Variable ;
//     Variable = "{" FieldPath [ "=" Segments ] "}" ;
//     FieldPath = IDENT { "." IDENT } ;
//     Verb     = ":" LITERAL ;
//
// A template is parsed once at start-up into a flat list of segment patterns plus the variables
// that capture ranges of them, so matching a request path is a single pass over its segments.

export type SegmentPattern =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "wildcard" } // `*`: exactly one non-empty segment
  | { readonly kind: "deep-wildcard" }; // `**`: zero or more segments, only last (before the verb)

export interface TemplateVariable {
  /** The request field the variable binds, e.g. `["book", "shelf", "id"]` for `{book.shelf.id}`. */
  readonly fieldPath: readonly string[];
  /** Index of the first segment pattern the variable covers. */
  readonly start: number;
  /** Index after its last segment pattern. */
  readonly end: number;
  /**
   * Single-segment variables (`{v}`, `{v=*}`) decode every percent-escape, `%2F` included;
   * multi-segment ones (`{v=a/*}`, `{v=**}`) leave `%2F`/`%2f` encoded (HttpRule spec).
   */
  readonly multiSegment: boolean;
}

export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly SegmentPattern[];
  readonly variables: readonly TemplateVariable[];
  readonly verb: string | undefined;
}

export class PathTemplateError extends Error {
  constructor(source: string, reason: string) {
    super(`invalid path template "${source}": ${reason}`);
    this.name = "PathTemplateError";
  }
}

const identPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 3986 pchar minus the characters the grammar itself uses ("/", "{", "}", "=", ":", "*").
const literalPattern = /^(?:[A-Za-z0-9\-._~!$&'()+,;@]|%[0-9A-Fa-f]{2})+$/;

export function parsePathTemplate(source: string): PathTemplate {
  const fail = (reason: string): never => {
    throw new PathTemplateError(source, reason);
  };
  if (!source.startsWith("/")) fail("must start with '/'");

  // The verb is the text after the last ':' that is not inside a variable.
  let body = source.slice(1);
  let verb: string | undefined;
  let depth = 0;
  for (let i = body.length - 1; i >= 0; i--) {
    const c = body[i];
    if (c === "}") depth++;
    else if (c === "{") depth--;
    else if (c === ":" && depth === 0) {
      verb = body.slice(i + 1);
      body = body.slice(0, i);
      if (!literalPattern.test(verb)) fail(`invalid verb ":${verb}"`);
      break;
    }
  }

  const segments: SegmentPattern[] = [];
  const variables: TemplateVariable[] = [];
  let pos = 0;

  const parseSegment = (text: string, insideVariable: boolean): void => {
    if (text === "*") segments.push({ kind: "wildcard" });
    else if (text === "**") segments.push({ kind: "deep-wildcard" });
    else if (text.includes("{") || text.includes("}")) {
      fail(insideVariable ? "a variable must not contain another variable" : `malformed segment "${text}"`);
    } else if (text === "") fail("empty segment");
    else if (!literalPattern.test(text)) fail(`invalid literal "${text}"`);
    else segments.push({ kind: "literal", value: decodeLiteral(text) });
  };

  while (pos <= body.length) {
    if (body[pos] === "{") {
      const close = body.indexOf("}", pos);
      if (close < 0) fail("unclosed '{'");
      const inner = body.slice(pos + 1, close);
      if (inner.includes("{")) fail("a variable must not contain another variable");
      const eq = inner.indexOf("=");
      const fieldPathText = eq < 0 ? inner : inner.slice(0, eq);
      const fieldPath = fieldPathText.split(".");
      if (!fieldPath.every((part) => identPattern.test(part))) fail(`invalid field path "${fieldPathText}"`);
      if (variables.some((v) => v.fieldPath.join(".") === fieldPathText)) {
        fail(`field "${fieldPathText}" is bound twice`);
      }
      const start = segments.length;
      if (eq < 0) segments.push({ kind: "wildcard" });
      else {
        const sub = inner.slice(eq + 1);
        if (sub === "") fail(`variable "${fieldPathText}" has an empty template`);
        for (const part of sub.split("/")) parseSegment(part, true);
      }
      const end = segments.length;
      const covers = segments.slice(start, end);
      const multiSegment = covers.length > 1 || covers.some((s) => s.kind === "deep-wildcard");
      variables.push({ fieldPath, start, end, multiSegment });
      pos = close + 1;
    } else {
      let next = body.indexOf("/", pos);
      if (next < 0) next = body.length;
      const text = body.slice(pos, next);
      parseSegment(text, false);
      pos = next;
    }
    if (pos === body.length) break;
    if (body[pos] !== "/") fail(`expected '/' at offset ${pos + 1}`);
    pos++;
    if (pos === body.length) fail("trailing '/'");
  }

  const deep = segments.findIndex((s) => s.kind === "deep-wildcard");
  if (deep >= 0 && deep !== segments.length - 1) fail("'**' must be the last segment");

  return { source, segments, variables, verb };
}

/** Result of matching: variable values keyed by dotted field path, decoded per the spec. */
export type PathBindings = Map<string, string>;

export class PathDecodeError extends Error {
  constructor(readonly segment: string) {
    super(`invalid percent-encoding in path segment "${segment}"`);
    this.name = "PathDecodeError";
  }
}

/**
 * Splits a request path (without the query) into raw, still percent-encoded segments and its verb
 * candidate. Done once per request; every template is matched against the same split.
 */
export interface SplitPath {
  readonly segments: readonly string[];
  /** The last segment with a trailing `:verb` removed, and that verb (if the last segment had a ':'). */
  readonly verbSplit: { readonly last: string; readonly verb: string } | undefined;
}

export function splitPath(path: string): SplitPath | undefined {
  if (!path.startsWith("/")) return undefined;
  const segments = path.slice(1).split("/");
  const last = segments[segments.length - 1] ?? "";
  const colon = last.lastIndexOf(":");
  const verbSplit = colon >= 0 ? { last: last.slice(0, colon), verb: last.slice(colon + 1) } : undefined;
  return { segments, verbSplit };
}

/**
 * Matches a split request path. Returns the bindings, or undefined when the path does not match.
 * Throws PathDecodeError when a captured segment holds a malformed percent-escape (a 400, not a 404).
 */
export function matchPathTemplate(template: PathTemplate, path: SplitPath): PathBindings | undefined {
  let segments = path.segments;
  if (template.verb !== undefined) {
    if (path.verbSplit === undefined || decodeLiteralSafe(path.verbSplit.verb) !== template.verb)
      return undefined;
    segments = [...segments.slice(0, -1), path.verbSplit.last];
  }

  const patterns = template.segments;
  const deep = patterns.length > 0 && patterns[patterns.length - 1]?.kind === "deep-wildcard";
  const fixed = deep ? patterns.length - 1 : patterns.length;
  if (deep ? segments.length < fixed : segments.length !== fixed) return undefined;

  for (let i = 0; i < fixed; i++) {
    const pattern = patterns[i]!;
    const segment = segments[i]!;
    if (segment === "") return undefined;
    if (pattern.kind === "literal" && decodeLiteralSafe(segment) !== pattern.value) return undefined;
  }

  const bindings: PathBindings = new Map();
  for (const variable of template.variables) {
    // A `**` variable runs to the end of the path; otherwise it covers exactly its patterns.
    const end = variable.end === patterns.length && deep ? segments.length : variable.end;
    const captured = segments.slice(variable.start, end);
    const value = variable.multiSegment
      ? captured.map((s) => decodeSegment(s, true)).join("/")
      : decodeSegment(captured[0] ?? "", false);
    bindings.set(variable.fieldPath.join("."), value);
  }
  return bindings;
}

/**
 * Percent-decodes one raw segment. For multi-segment variables `%2F`/`%2f` stay encoded so a
 * captured value can be split back into its segments unambiguously.
 */
export function decodeSegment(segment: string, keepEncodedSlash: boolean): string {
  if (!segment.includes("%")) return segment;
  if (!/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(segment)) throw new PathDecodeError(segment);
  const parts = keepEncodedSlash ? segment.split(/(%2[Ff])/) : [segment];
  try {
    return parts
      .map((part, i) => (keepEncodedSlash && i % 2 === 1 ? part : decodeURIComponent(part)))
      .join("");
  } catch {
    // Well-formed escapes can still form invalid UTF-8.
    throw new PathDecodeError(segment);
  }
}

function decodeLiteral(text: string): string {
  return text.includes("%") ? decodeURIComponent(text) : text;
}

function decodeLiteralSafe(text: string): string | undefined {
  try {
    return decodeLiteral(text);
  } catch {
    return undefined;
  }
}

/**
 * Orders templates so the most specific wins when several match the same path: earlier literal
 * segments beat `*`, which beats `**`; a template with a verb beats one without.
 */
export function compareSpecificity(a: PathTemplate, b: PathTemplate): number {
  const rank = (s: SegmentPattern | undefined): number =>
    s === undefined ? 3 : s.kind === "literal" ? 0 : s.kind === "wildcard" ? 1 : 2;
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const diff = rank(a.segments[i]) - rank(b.segments[i]);
    if (diff !== 0) return diff;
  }
  return (a.verb === undefined ? 1 : 0) - (b.verb === undefined ? 1 : 0);
}

/** A canonical form used to detect two bindings with the same template at start-up. */
export function templateShape(template: PathTemplate): string {
  const parts = template.segments.map((s) =>
    s.kind === "literal" ? s.value : s.kind === "wildcard" ? "*" : "**",
  );
  return "/" + parts.join("/") + (template.verb === undefined ? "" : `:${template.verb}`);
}
