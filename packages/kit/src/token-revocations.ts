import type { Redis } from "ioredis";
import { decodeJwt, type JWTPayload } from "jose";
import { DomainError } from "./errors.js";
import type { Logger } from "./log.js";
import type { TokenVerifier } from "./principal.js";

// Access tokens are verified locally and live 15 minutes, so signing out cannot recall them by
// itself. auth therefore records revocations in Redis for exactly as long as a revoked token could
// still verify: a session ended (logout, revoked session, refresh-token reuse) by its `sid`, and
// "every token of this user issued before T" (password reset, role change, deactivation,
// deletion) by its `sub`. A verifier wrapped with `withRevocationCheck` refuses such tokens — one
// Redis round trip per verification.
//
// When Redis cannot be reached the check lets tokens through (logged once per outage): the
// platform then degrades to plain stateless tokens, which expire within 15 minutes, rather than
// refusing every signed-in call.

export interface TokenRevocations {
  /** Access tokens of these sessions (`sid` claim) are refused from now on. */
  revokeSessions(sessionIds: readonly string[]): Promise<void>;
  /**
   * Access tokens of this user (`sub`) issued before `at` — or within the same second, as `iat` has
   * whole seconds — are refused. (auth issues no new token for the user within that second.)
   */
  revokeTokensIssuedBefore(userId: string, at: Date): Promise<void>;
  /** Whether a verified token's claims are revoked. */
  isRevoked(claims: JWTPayload): Promise<boolean>;
}

const KEY_PREFIX = "zero:revoked";

export function createTokenRevocations(deps: {
  redis: Redis;
  /** The longest an access token lives (auth's ACCESS_TOKEN_TTL_SECONDS); entries outlive it a minute. */
  accessTokenTtlSeconds: number;
  logger: Logger;
}): TokenRevocations {
  const { redis, logger } = deps;
  const ttl = deps.accessTokenTtlSeconds + 60;
  let failing = false;

  return {
    async revokeSessions(sessionIds) {
      if (sessionIds.length === 0) return;
      const pipeline = redis.pipeline();
      for (const sid of sessionIds) pipeline.set(`${KEY_PREFIX}:session:${sid}`, "1", "EX", ttl);
      const results = (await pipeline.exec()) ?? [];
      const error = results.find(([e]) => e !== null)?.[0];
      if (error) throw error;
    },

    async revokeTokensIssuedBefore(userId, at) {
      await redis.set(`${KEY_PREFIX}:user:${userId}`, String(Math.floor(at.getTime() / 1000)), "EX", ttl);
    },

    async isRevoked(claims) {
      const sid = typeof claims["sid"] === "string" ? claims["sid"] : undefined;
      if (claims.sub === undefined) return false;
      try {
        const [session, before] = await redis.mget(
          `${KEY_PREFIX}:session:${sid ?? "-"}`,
          `${KEY_PREFIX}:user:${claims.sub}`,
        );
        if (failing) {
          failing = false;
          logger.info("token revocation list reachable again");
        }
        if (sid !== undefined && session !== null) return true;
        return before !== null && (claims.iat ?? 0) <= Number(before);
      } catch (error) {
        if (!failing) {
          failing = true;
          logger.warn({ err: error }, "token revocation list unreachable: accepting unexpired tokens");
        }
        return false;
      }
    },
  };
}

/**
 * Wraps a verifier so that revoked tokens are refused (`unauthenticated`, reason `TOKEN_REVOKED`)
 * after their signature and claims have been verified. `isRevoked` is `TokenRevocations.isRevoked`
 * or any other source (auth checks its own database).
 */
export function withRevocationCheck(
  verifier: TokenVerifier,
  isRevoked: (claims: JWTPayload) => Promise<boolean>,
): TokenVerifier {
  return {
    async verify(token) {
      const principal = await verifier.verify(token);
      // Safe to decode without checking again: `verify` just checked this very token.
      if (await isRevoked(decodeJwt(token))) {
        throw new DomainError(
          "unauthenticated",
          "the access token was revoked (signed out, or the session ended): sign in again",
          { reason: "TOKEN_REVOKED" },
        );
      }
      return principal;
    },
  };
}
