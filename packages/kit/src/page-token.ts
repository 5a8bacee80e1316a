import { createHash } from "node:crypto";
import { DomainError, invalidArgument } from "./errors.js";

// Cursor pagination (DESIGN.md "Lists"): a page token holds the sort key of the last row of the
// previous page, bound to the list and the filters it was issued for — the same token replayed with
// other filters would silently skip or repeat rows, so it is refused instead. base64url JSON: opaque
// to clients, not a secret (it grants nothing; every page is still filtered by the caller's rights).
// Anything that does not decode is the client's mistake: invalid_argument on `page_token`, never a 500.

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/**
 * AIP-158 page size: 0 means the default, larger than the maximum is lowered to it, negative is
 * invalid_argument on `page_size`.
 */
export function pageSizeOf(requested: number, opts: { default?: number; max?: number } = {}): number {
  const max = opts.max ?? MAX_PAGE_SIZE;
  if (requested < 0) throw invalidArgument("page_size", `must be between 0 and ${max} (0 = the default)`);
  return requested === 0 ? (opts.default ?? DEFAULT_PAGE_SIZE) : Math.min(requested, max);
}

/** What a cursor field holds: an id (UUID), a point in time, or any other text (a name, a locale). */
export type CursorField = "uuid" | "timestamp" | "text";

/** The decoded cursor: timestamps as `Date`, the rest as strings. */
export type Cursor<F extends Record<string, CursorField>> = {
  [K in keyof F]: F[K] extends "timestamp" ? Date : string;
};

export interface PageTokens<C> {
  /** The cursor to continue after; undefined for "" (the first page); invalid_argument for anything else. */
  decode(token: string): C | undefined;
  encode(cursor: C): string;
  /**
   * A page read one row ahead (`limit: size + 1`): the first `size` rows, and the next page's token
   * when the extra row exists, else "".
   */
  page<T>(rows: readonly T[], size: number, cursorOf: (row: T) => C): { items: T[]; nextPageToken: string };
}

export interface PageTokensOptions<F extends Record<string, CursorField>> {
  /** Names the list, so a token of another list is refused (e.g. "deliveries"). */
  list: string;
  /** The effective filters of this request (JSON-serialisable, the owner included): a token works only with the ones it was issued for. */
  filters?: unknown;
  /** The cursor's fields and what they hold, e.g. `{ at: "timestamp", id: "uuid" }`. */
  cursor: F;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
// Far longer than any token this file issues; longer input is refused before it is decoded.
const MAX_TOKEN_LENGTH = 2048;

/** Page tokens of one list with the filters of the current request. */
export function createPageTokens<F extends Record<string, CursorField>>(
  opts: PageTokensOptions<F>,
): PageTokens<Cursor<F>> {
  // A hash keeps the token short and the filter values out of it.
  const scope = createHash("sha256")
    .update(JSON.stringify([opts.list, opts.filters ?? null]))
    .digest("base64url")
    .slice(0, 16);
  const fields = Object.entries(opts.cursor);

  const encode = (cursor: Cursor<F>): string => {
    const position: Record<string, string> = {};
    for (const [name, kind] of fields) {
      const value = (cursor as Record<string, string | Date>)[name];
      position[name] = kind === "timestamp" ? (value as Date).toISOString() : (value as string);
    }
    return Buffer.from(JSON.stringify({ s: scope, p: position })).toString("base64url");
  };

  const decode = (token: string): Cursor<F> | undefined => {
    if (token === "") return undefined;
    const parsed = token.length <= MAX_TOKEN_LENGTH ? parse(token) : undefined;
    const { s, p } = (parsed ?? {}) as { s?: unknown; p?: unknown };
    const position = typeof p === "object" && p !== null ? (p as Record<string, unknown>) : undefined;
    const cursor: Record<string, string | Date> = {};
    for (const [name, kind] of fields) {
      const value = position?.[name];
      const decoded = typeof value === "string" ? decodeField(kind, value) : undefined;
      if (decoded === undefined) throw malformed();
      cursor[name] = decoded;
    }
    if (typeof s !== "string") throw malformed();
    if (s !== scope) {
      throw new DomainError(
        "invalid_argument",
        "page_token was issued for another list or other filters: send the same filters as the first page, or start again without it",
        { fieldViolations: [{ field: "page_token", description: "does not match the list or its filters" }] },
      );
    }
    return cursor as Cursor<F>;
  };

  return {
    decode,
    encode,
    page(rows, size, cursorOf) {
      const items = rows.slice(0, size);
      const last = items.at(-1);
      return {
        items,
        nextPageToken: rows.length > size && last !== undefined ? encode(cursorOf(last)) : "",
      };
    },
  };
}

function parse(token: string): unknown {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  try {
    return JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
}

function decodeField(kind: CursorField, value: string): string | Date | undefined {
  if (kind === "uuid") return UUID.test(value) ? value : undefined;
  if (kind === "timestamp") {
    const at = ISO_TIME.test(value) ? new Date(value) : undefined;
    return at !== undefined && !Number.isNaN(at.getTime()) ? at : undefined;
  }
  return value;
}

function malformed(): DomainError {
  return new DomainError(
    "invalid_argument",
    "page_token is not a token this list issued: pass next_page_token unchanged, or start again without it",
    { fieldViolations: [{ field: "page_token", description: "is malformed" }] },
  );
}
