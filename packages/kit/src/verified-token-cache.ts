import { decodeJwt } from "jose";
import type { Principal, TokenVerifier } from "./principal.js";

// Verifying an access token is an Ed25519 signature check (~100–250 µs of CPU), and a client sends
// the same token with every call for its whole life. This is the memory of tokens already
// verified, so a repeated token costs a map lookup instead.
//
// Keyed by the exact token string, not a hash of it: only tokens the verifier accepted get in, and
// those are auth's own (well under 1 KiB, at most 8 KiB by the verifier's length cap), so the
// memory bound is `maxEntries` × token size — about 5 MB at the default; a Map lookup needs no
// hashing of ours on every call and no argument about collisions; and the same string already sits
// in the request's headers, so a digest would not keep bearer tokens out of memory.

export interface VerifiedTokenCacheOptions {
  /** Most tokens remembered; the least recently used goes first. Default 10 000; 0 remembers none. */
  maxEntries?: number;
  /** Longest an entry is trusted, whatever the token's `exp` says. Default: until `exp`. */
  maxTtlMs?: number;
}

export interface VerifiedTokenCache<V> {
  /** What was remembered for this token, if it is still within its validity (a hit counts as a use). */
  get(token: string): V | undefined;
  /** Remembers a verified token until `expiresAt` (ms; its `exp`), not before `notBefore` (its `nbf`). */
  set(token: string, value: V, validity: { expiresAt: number; notBefore?: number }): void;
  delete(token: string): void;
  readonly size: number;
}

interface Entry<V> {
  readonly value: V;
  readonly from: number;
  readonly until: number;
}

/**
 * A bounded LRU memory of verified tokens. An entry is never answered at or after its `until` (the
 * token's `exp`, so an expired token goes back to the verifier, which refuses it) nor before its
 * `from` (`nbf`; only if the clock went backwards). Expired entries nobody asks for again are not
 * swept: they are simply the least recently used, and the size bound pushes them out.
 */
export function createVerifiedTokenCache<V>(
  opts: VerifiedTokenCacheOptions & { now?: () => number } = {},
): VerifiedTokenCache<V> {
  const maxEntries = opts.maxEntries ?? 10_000;
  const maxTtlMs = opts.maxTtlMs ?? Infinity;
  const now = opts.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  const entries = new Map<string, Entry<V>>();

  return {
    get(token) {
      const entry = entries.get(token);
      if (entry === undefined) return undefined;
      entries.delete(token);
      const at = now();
      if (at >= entry.until || at < entry.from) return undefined;
      entries.set(token, entry);
      return entry.value;
    },

    set(token, value, { expiresAt, notBefore }) {
      const at = now();
      const until = Math.min(expiresAt, at + maxTtlMs);
      entries.delete(token);
      if (maxEntries <= 0 || !(until > at)) return;
      while (entries.size >= maxEntries) {
        const oldest = entries.keys().next();
        if (oldest.done === true) break;
        entries.delete(oldest.value);
      }
      entries.set(token, { value, from: notBefore ?? -Infinity, until });
    },

    delete(token) {
      entries.delete(token);
    },

    get size() {
      return entries.size;
    },
  };
}

/**
 * Concurrent verifications of one token share one: a client firing several calls at once with a
 * token not yet remembered costs one signature check, not one each. Only in-flight promises are
 * held (a settled one, success or refusal, is forgotten at once), so the map is bounded by the calls
 * under way.
 */
export function createSharedVerifications<T>(): (token: string, verify: () => Promise<T>) => Promise<T> {
  const inflight = new Map<string, Promise<T>>();
  return (token, verify) => {
    let pending = inflight.get(token);
    if (pending === undefined) {
      pending = verify().finally(() => inflight.delete(token));
      inflight.set(token, pending);
    }
    return pending;
  };
}

/**
 * Caches a verifier the kit did not build (the gateway's injected ones; the kit's own
 * `createTokenVerifier` caches by itself). This wrapper cannot see the wrapped verifier's signing
 * keys, so it cannot drop an entry when a key leaves the JWKS: `maxTtlMs` (default 60 s here)
 * bounds how long a token signed by a withdrawn key keeps working beyond the verifier's own refresh.
 * Refusals are never remembered: a forged token is verified — and refused — every time.
 */
export function withVerifiedTokenCache(
  verifier: TokenVerifier,
  opts: VerifiedTokenCacheOptions & { now?: () => number } = {},
): TokenVerifier {
  const cache = createVerifiedTokenCache<Principal>({ ...opts, maxTtlMs: opts.maxTtlMs ?? 60_000 });
  const shared = createSharedVerifications<Principal>();
  return {
    verify(token) {
      const hit = cache.get(token);
      if (hit !== undefined) return Promise.resolve(hit);
      return shared(token, async () => {
        const principal = await verifier.verify(token);
        const validity = validityOf(token);
        if (validity !== undefined) cache.set(token, principal, validity);
        return principal;
      });
    },
  };
}

/** `exp`/`nbf` in ms of a token the verifier has just accepted; undefined without a numeric `exp`. */
function validityOf(token: string): { expiresAt: number; notBefore?: number } | undefined {
  try {
    const { exp, nbf } = decodeJwt(token);
    if (typeof exp !== "number") return undefined;
    return typeof nbf === "number"
      ? { expiresAt: exp * 1000, notBefore: nbf * 1000 }
      : { expiresAt: exp * 1000 };
  } catch {
    return undefined;
  }
}
