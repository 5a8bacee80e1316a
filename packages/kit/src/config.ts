// Reads configuration from an environment map. Every accessor records its problem instead of
// throwing, so `done()` can report EVERY missing or malformed variable at once: an operator fixing
// a deployment should not discover the problems one restart at a time.

export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  - ${problems.join("\n  - ")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface IntRange {
  min?: number;
  max?: number;
}

export interface EnvReader {
  /** A required string; `fallback` is used when the variable is unset or empty. */
  string(name: string, fallback?: string): string;
  /** A base-10 integer, optionally bounded (inclusive). */
  int(name: string, fallback?: number, range?: IntRange): number;
  /** `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case). */
  bool(name: string, fallback?: boolean): boolean;
  /** An absolute URL, returned as given (so credentials in it survive untouched). */
  url(name: string, fallback?: string): string;
  /** A comma-separated list; items are trimmed and empty items dropped. */
  list(name: string, fallback?: readonly string[]): string[];
  /** A string that may be absent: `undefined` when unset or empty. */
  optional(name: string): string | undefined;
  /** Throws a `ConfigError` listing every problem recorded so far. */
  done(): void;
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off"]);

export function envReader(env: Record<string, string | undefined>): EnvReader {
  const problems: string[] = [];

  // An empty variable counts as unset: compose files and shells often export `FOO=`.
  const raw = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };

  const missing = (name: string, what: string): void => {
    problems.push(`${name} is required (${what}) but is not set`);
  };

  return {
    string(name, fallback) {
      const value = raw(name) ?? fallback;
      if (value === undefined) {
        missing(name, "a string");
        return "";
      }
      return value;
    },

    int(name, fallback, range) {
      const value = raw(name);
      if (value === undefined) {
        if (fallback === undefined) missing(name, "an integer");
        return fallback ?? 0;
      }
      if (!/^[-+]?\d+$/.test(value)) {
        problems.push(`${name} must be an integer, got "${value}"`);
        return fallback ?? 0;
      }
      const n = Number(value);
      if (!Number.isSafeInteger(n)) {
        problems.push(`${name} is out of range: "${value}"`);
        return fallback ?? 0;
      }
      if (range?.min !== undefined && n < range.min)
        problems.push(`${name} must be at least ${range.min}, got ${n}`);
      if (range?.max !== undefined && n > range.max)
        problems.push(`${name} must be at most ${range.max}, got ${n}`);
      return n;
    },

    bool(name, fallback) {
      const value = raw(name);
      if (value === undefined) {
        if (fallback === undefined) missing(name, "true or false");
        return fallback ?? false;
      }
      const lower = value.toLowerCase();
      if (TRUE.has(lower)) return true;
      if (FALSE.has(lower)) return false;
      problems.push(`${name} must be true or false, got "${value}"`);
      return fallback ?? false;
    },

    url(name, fallback) {
      const value = raw(name) ?? fallback;
      if (value === undefined) {
        missing(name, "a URL");
        return "";
      }
      if (!URL.canParse(value)) {
        // Never echo the value: URLs carry passwords (postgres://user:secret@host/db).
        problems.push(`${name} must be an absolute URL (e.g. scheme://host:port)`);
      }
      return value;
    },

    list(name, fallback) {
      const value = raw(name);
      if (value === undefined) {
        if (fallback === undefined) missing(name, "a comma-separated list");
        return [...(fallback ?? [])];
      }
      return value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");
    },

    optional(name) {
      return raw(name);
    },

    done() {
      if (problems.length > 0) throw new ConfigError([...problems]);
    },
  };
}
