import type { Principal, TokenVerifier } from "@zero/kit/principal";

export interface VerifiedTokenCacheOptions {
  /** Most tokens remembered; the oldest entry goes first. Default 10 000. */
  maxEntries?: number;
  /**
   * Longest a verification is trusted, whatever the token's `exp` says; default 60 s. It bounds
   * how long a token signed by a key auth has since withdrawn keeps working at the edge.
   */
  maxTtlMs?: number;
  now?: () => number;
}

interface Entry {
  readonly principal: Principal;
  readonly until: number;
}

/**
 * Remembers tokens the wrapped verifier accepted, so a client's repeated calls cost a map lookup
 * instead of an Ed25519 verification each. An entry lives until the token's `exp` (never past it:
 * an expired token is re-verified and so refused) or `maxTtlMs`, whichever is sooner. Refusals
 * are not remembered, so the cache cannot be filled with garbage; concurrent verifications of one
 * token share one verification.
 */
export function createVerifiedTokenCache(
  verifier: TokenVerifier,
  opts: VerifiedTokenCacheOptions = {},
): TokenVerifier {
  const maxEntries = opts.maxEntries ?? 10_000;
  const maxTtlMs = opts.maxTtlMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const inflight = new Map<string, Promise<Principal>>();

  const remember = (token: string, principal: Principal): void => {
    const exp = expiryOf(token);
    if (exp === undefined) return;
    const until = Math.min(exp, now() + maxTtlMs);
    if (until <= now()) return;
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    entries.set(token, { principal, until });
  };

  return {
    verify(token) {
      const entry = entries.get(token);
      if (entry !== undefined) {
        if (entry.until > now()) return Promise.resolve(entry.principal);
        entries.delete(token);
      }
      let pending = inflight.get(token);
      if (pending === undefined) {
        pending = verifier.verify(token).then(
          (principal) => {
            inflight.delete(token);
            remember(token, principal);
            return principal;
          },
          (error: unknown) => {
            inflight.delete(token);
            throw error;
          },
        );
        inflight.set(token, pending);
      }
      return pending;
    },
  };
}

/**
 * `exp` in milliseconds from a token the verifier has just accepted (so its payload is known to
 * be well-formed JSON signed by auth); undefined when it carries none.
 */
function expiryOf(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
