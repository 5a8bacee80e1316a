import { DomainError } from "@zero/kit/errors";
import argon2 from "argon2";
import { guessablePasswordProblem } from "./common-passwords.js";

// Email and password rules, and the password hasher. Pure checks return a description of the
// problem (or undefined) so the service can report every violation of a request at once.

export const EMAIL_MAX = 254;
export const EMAIL_LOCAL_MAX = 64;
export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 128;
export const NAME_MAX = 100;

// Whitespace and control characters never belong in an address (and would let two visually
// identical addresses register as different accounts).
const FORBIDDEN_IN_EMAIL = /[\s\p{Cc}]/u;

/** Trimmed and lower-cased: the form stored, compared and made unique. */
export function normaliseEmail(raw: string): string {
  return raw.trim().toLowerCase();
}

/** Code points, not UTF-16 units: an emoji is one character to the person typing it. */
export function characterCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * A pragmatic subset of RFC 5322 for an already normalised address: one `@`, a local part of 1–64
 * characters, a dotted domain without empty labels, at most 254 characters, no spaces or control
 * characters. Deliverability is what proves an address; this only rejects what cannot be one.
 */
export function emailProblem(email: string): string | undefined {
  if (email === "") return "is required";
  if (characterCount(email) > EMAIL_MAX) return `must be at most ${EMAIL_MAX} characters`;
  const characters = emailCharactersProblem(email);
  if (characters !== undefined) return characters;
  const parts = email.split("@");
  if (parts.length !== 2) return "must contain exactly one @";
  const [local = "", domain = ""] = parts;
  if (local === "") return "must have a name before the @";
  if (characterCount(local) > EMAIL_LOCAL_MAX)
    return `must have at most ${EMAIL_LOCAL_MAX} characters before the @`;
  const labels = domain.split(".");
  if (labels.length < 2 || labels.some((l) => l === ""))
    return "must have a domain with a dot after the @, like example.com";
  return undefined;
}

/**
 * Only the characters of a normalised address: what sign-in checks, since no account can have an
 * address with spaces or control characters (registration refuses them), so saying so reveals nothing.
 */
export function emailCharactersProblem(email: string): string | undefined {
  return FORBIDDEN_IN_EMAIL.test(email) ? "must not contain spaces or control characters" : undefined;
}

/** Length only (NIST SP 800-63B): composition rules make passwords weaker, not stronger. */
export function passwordProblem(password: string): string | undefined {
  if (password === "") return "is required";
  const n = characterCount(password);
  if (n < PASSWORD_MIN) return `must be at least ${PASSWORD_MIN} characters`;
  if (n > PASSWORD_MAX) return `must be at most ${PASSWORD_MAX} characters`;
  return undefined;
}

/** For a password being set (register, change, reset): length, then guessability. */
export function newPasswordProblem(password: string, context: { email?: string } = {}): string | undefined {
  return passwordProblem(password) ?? guessablePasswordProblem(password, context);
}

export function nameProblem(name: string): string | undefined {
  if (characterCount(name) > NAME_MAX) return `must be at most ${NAME_MAX} characters`;
  if (/\p{Cc}/u.test(name)) return "must not contain control characters";
  return undefined;
}

/** argon2id cost parameters (OWASP minimum: m=19456 KiB, t=2, p=1). */
export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const OWASP_ARGON2: Readonly<Argon2Params> = Object.freeze({
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
});

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** False on a mismatch or an unparsable hash; never throws for a wrong password. */
  verify(hash: string, password: string): Promise<boolean>;
  /**
   * Spends the time of one verification against a hash no password matches, so an unknown email
   * costs a login the same as a wrong password.
   */
  verifyNothing(password: string): Promise<void>;
  /** The hash was made with other parameters than the configured ones: rehash on next sign-in. */
  needsRehash(hash: string): boolean;
}

export function createPasswordHasher(
  opts: Argon2Params & { maxConcurrent: number; maxQueued?: number },
): PasswordHasher {
  for (const k of ["memoryCost", "timeCost", "parallelism"] as const) {
    if (opts[k] < OWASP_ARGON2[k])
      throw new Error(`argon2 ${k} ${opts[k]} is below the OWASP minimum ${OWASP_ARGON2[k]}`);
  }
  const params = {
    type: argon2.argon2id,
    memoryCost: opts.memoryCost,
    timeCost: opts.timeCost,
    parallelism: opts.parallelism,
  };
  // argon2 runs on libuv's pool (4 threads by default), which DNS lookups and file I/O share: a
  // login flood must queue here rather than occupy every thread.
  const limit = createLimiter(opts.maxConcurrent, opts.maxQueued ?? Number.POSITIVE_INFINITY);
  // Computed once, up front, with the same parameters as real hashes: verifying against it then
  // takes as long as a real verification, from the very first login on.
  const dummyHash = limit(() => argon2.hash("zero-auth: no account has this password", params));
  // Observed here so a failure is not an unhandled rejection; verifyNothing rethrows it.
  void dummyHash.catch(() => undefined);

  const verify = (hash: string, password: string) =>
    limit(async () => {
      try {
        return await argon2.verify(hash, password);
      } catch {
        return false;
      }
    });

  return {
    hash: (password) => limit(() => argon2.hash(password, params)),
    verify,
    async verifyNothing(password) {
      await verify(await dummyHash, password);
    },
    needsRehash(hash) {
      try {
        return (
          !hash.startsWith("$argon2id$") ||
          argon2.needsRehash(hash, {
            memoryCost: params.memoryCost,
            timeCost: params.timeCost,
            parallelism: params.parallelism,
          })
        );
      } catch {
        // Not an argon2 PHC string (another scheme imported one day): replace it.
        return true;
      }
    },
  };
}

/**
 * At most `max` tasks run at once; up to `maxQueued` more wait in arrival order. Beyond that a
 * flood is refused at once (`unavailable`) instead of queueing for longer than any client waits —
 * memory and latency stay bounded, and the requests already waiting still get served.
 */
function createLimiter(max: number, maxQueued: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!Number.isInteger(max) || max < 1)
    throw new Error(`concurrency limit must be a positive integer, got ${max}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running >= max) {
      if (waiting.length >= maxQueued) {
        throw new DomainError("unavailable", "too many sign-ins at this moment: retry in a few seconds", {
          reason: "HASHING_BUSY",
        });
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else running++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (running stays the same) or release it.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
