import { getOption } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { access } from "@zero/proto/zero/options/v1/access_pb";
import type { Access } from "@zero/proto/zero/options/v1/access_pb";
import { createLocalJWKSet, errors, jwtVerify } from "jose";
import type { JWK, JWTPayload } from "jose";
import { DomainError } from "./errors.js";
import {
  createSharedVerifications,
  createVerifiedTokenCache,
  type VerifiedTokenCacheOptions,
} from "./verified-token-cache.js";

/** Who is calling, as established from a verified access token. */
export interface Principal {
  subject: string;
  roles: string[];
  kind: "user" | "service";
}

/** Set by the server's access-policy interceptor; `undefined` for anonymous calls to PUBLIC methods. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "zero.principal",
});

/** The caller of a USER/ADMIN/INTERNAL method (always present there: the kit refused the call otherwise). */
export function requirePrincipal(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalKey);
  if (principal === undefined) {
    throw new DomainError(
      "unauthenticated",
      "this call needs an access token: send `authorization: Bearer <token>`",
    );
  }
  return principal;
}

/** The method's `(zero.options.v1.access)` option; `ACCESS_UNSPECIFIED` when it has none. */
export function accessPolicyOf(method: DescMethod): Access {
  return getOption(method, access);
}

export interface TokenVerifier {
  /** Resolves the token's principal, or throws `DomainError("unauthenticated")`. */
  verify(token: string): Promise<Principal>;
}

export interface TokenVerifierOptions {
  issuer: string;
  audience: string;
  /** Fetches the issuer's public keys (auth's JWKS). Called lazily, then on rotation. */
  getJwks: () => Promise<{ keys: JWK[] }>;
  /** An unknown `kid` refetches the JWKS at most this often (default 30 s), so forged kids cannot hammer auth. */
  refetchCooldownMs?: number;
  /** Keys older than this are refetched on the next verification (default 10 min), so removed keys stop working. */
  maxAgeMs?: number;
  /**
   * Verified tokens are remembered (default: up to 10 000, each until its `exp`) so a repeated token
   * skips the signature check; `false` verifies every call. See `verified-token-cache.ts`.
   */
  cache?: VerifiedTokenCacheOptions | false;
  /** The clock (ms since the epoch) for `exp`/`nbf`, the cache and key refreshes; default `Date.now`. */
  now?: () => number;
}

const MAX_TOKEN_LENGTH = 8192;

/** The issuer's keys as last fetched: what jose verifies with, and which key material each `kid` names. */
interface KeySet {
  readonly verifyingKeys: ReturnType<typeof createLocalJWKSet>;
  readonly keyByKid: ReadonlyMap<string, string>;
}

/** A remembered verification: the principal, and the key it was verified with. */
interface Verified {
  readonly principal: Principal;
  readonly kid: string;
  readonly key: string;
}

export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  const cooldownMs = opts.refetchCooldownMs ?? 30_000;
  const maxAgeMs = opts.maxAgeMs ?? 10 * 60_000;
  const now = opts.now ?? Date.now;
  const cache = opts.cache === false ? undefined : createVerifiedTokenCache<Verified>({ ...opts.cache, now });
  const shared = createSharedVerifications<Principal>();
  let keySet: KeySet | undefined;
  let fetchedAt = 0;
  let lastAttemptAt = -Infinity;
  let inflight: Promise<KeySet> | undefined;

  const fetchKeys = (): Promise<KeySet> => {
    // Concurrent verifications share one fetch.
    inflight ??= (async () => {
      lastAttemptAt = now();
      try {
        const jwks = await opts.getJwks();
        keySet = { verifyingKeys: createLocalJWKSet(jwks), keyByKid: keysByKid(jwks.keys) };
        fetchedAt = now();
        return keySet;
      } catch (cause) {
        // A stale key set beats refusing every caller while auth is briefly unreachable.
        if (keySet !== undefined) return keySet;
        throw new DomainError(
          "unavailable",
          "access tokens cannot be verified right now (signing keys unavailable): retry shortly",
          {
            reason: "JWKS_UNAVAILABLE",
            cause,
          },
        );
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  const currentKeys = (): Promise<KeySet> => {
    const fresh = keySet !== undefined && now() - fetchedAt < maxAgeMs;
    const mayRetry = now() - lastAttemptAt >= cooldownMs;
    if (keySet !== undefined && (fresh || !mayRetry)) return Promise.resolve(keySet);
    return fetchKeys();
  };

  const verifyWith = async (token: string, keys: KeySet): Promise<Principal> => {
    const { payload, protectedHeader } = await jwtVerify(token, keys.verifyingKeys, {
      algorithms: ["EdDSA"],
      issuer: opts.issuer,
      audience: opts.audience,
      requiredClaims: ["exp", "sub"],
      currentDate: new Date(now()),
    });
    const principal = toPrincipal(payload);
    // Only a token naming its key is remembered, with that key's material, so the entry can be
    // checked against every later key set; auth always sets `kid`.
    const kid = protectedHeader.kid;
    const key = kid === undefined ? undefined : keys.keyByKid.get(kid);
    if (cache !== undefined && kid !== undefined && key !== undefined && typeof payload.exp === "number") {
      cache.set(
        token,
        { principal, kid, key },
        {
          expiresAt: payload.exp * 1000,
          ...(typeof payload.nbf === "number" ? { notBefore: payload.nbf * 1000 } : {}),
        },
      );
    }
    return principal;
  };

  const verifySignature = async (token: string, keys: KeySet): Promise<Principal> => {
    try {
      return await verifyWith(token, keys);
    } catch (error) {
      // A new kid usually means auth rotated its keys since we fetched them.
      if (error instanceof errors.JWKSNoMatchingKey && now() - lastAttemptAt >= cooldownMs) {
        try {
          return await verifyWith(token, await fetchKeys());
        } catch (retryError) {
          throw toDomainError(retryError);
        }
      }
      throw toDomainError(error);
    }
  };

  return {
    async verify(token) {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw invalidToken();
      // Keys first, even for a remembered token: a key set past its age is refetched here, and an
      // entry is honoured only while the key that verified it is still in the current set — a key
      // withdrawn from the JWKS stops its cached tokens as soon as the set is refetched without it.
      const keys = await currentKeys();
      if (cache === undefined) return verifySignature(token, keys);
      const hit = cache.get(token);
      if (hit !== undefined) {
        if (keys.keyByKid.get(hit.kid) === hit.key) return hit.principal;
        cache.delete(token);
      }
      return shared(token, () => verifySignature(token, keys));
    },
  };
}

/**
 * Each `kid` with the key material it names. A `kid` listed twice names no single key, so tokens
 * signed under it are verified every time rather than remembered.
 */
function keysByKid(keys: readonly JWK[]): Map<string, string> {
  const byKid = new Map<string, string>();
  const ambiguous = new Set<string>();
  for (const jwk of keys) {
    if (jwk.kid === undefined) continue;
    if (byKid.has(jwk.kid)) ambiguous.add(jwk.kid);
    byKid.set(jwk.kid, JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.alg]));
  }
  for (const kid of ambiguous) byKid.delete(kid);
  return byKid;
}

function toPrincipal(payload: JWTPayload): Principal {
  const { sub, roles, kind } = payload as JWTPayload & { roles?: unknown; kind?: unknown };
  if (typeof sub !== "string" || sub === "") throw invalidToken();
  if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === "string")))
    throw invalidToken();
  const roleList = roles ?? [];
  // A service token is one auth minted through IssueServiceToken (client credentials): it carries
  // `kind: "service"`. A role alone never makes a caller a service — roles are data an admin can
  // change; the kind claim is set only by the service-credentials flow.
  const isService = kind === "service";
  // Frozen: a remembered principal is handed to every later call with the same token.
  return Object.freeze({
    subject: sub,
    roles: Object.freeze([...roleList]) as string[],
    kind: isService ? "service" : "user",
  });
}

function invalidToken(): DomainError {
  return new DomainError("unauthenticated", "the access token is invalid: sign in again to get a new one", {
    reason: "TOKEN_INVALID",
  });
}

function toDomainError(error: unknown): DomainError {
  if (error instanceof DomainError) return error;
  if (error instanceof errors.JWTExpired) {
    return new DomainError("unauthenticated", "the access token has expired: refresh it or sign in again", {
      reason: "TOKEN_EXPIRED",
    });
  }
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "nbf") {
    return new DomainError(
      "unauthenticated",
      "the access token is not valid yet (nbf is in the future): check the client's clock",
      {
        reason: "TOKEN_NOT_YET_VALID",
      },
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed && (error.claim === "iss" || error.claim === "aud")) {
    return new DomainError(
      "unauthenticated",
      "the access token was not issued for this platform: sign in again",
      { reason: "TOKEN_INVALID" },
    );
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return new DomainError(
      "unauthenticated",
      "the access token was signed with an unknown key: sign in again",
      { reason: "TOKEN_INVALID" },
    );
  }
  return invalidToken();
}
