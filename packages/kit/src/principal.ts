import { getOption } from "@bufbuild/protobuf";
import type { DescMethod } from "@bufbuild/protobuf";
import { createContextKey } from "@connectrpc/connect";
import type { HandlerContext } from "@connectrpc/connect";
import { access } from "@zero/proto/zero/options/v1/access_pb";
import type { Access } from "@zero/proto/zero/options/v1/access_pb";
import { createLocalJWKSet, errors, jwtVerify } from "jose";
import type { JWK, JWTPayload } from "jose";
import { DomainError } from "./errors.js";

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
}

const MAX_TOKEN_LENGTH = 8192;

export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  const cooldownMs = opts.refetchCooldownMs ?? 30_000;
  const maxAgeMs = opts.maxAgeMs ?? 10 * 60_000;
  let keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  let lastAttemptAt = -Infinity;
  let inflight: Promise<ReturnType<typeof createLocalJWKSet>> | undefined;

  const fetchKeys = (): Promise<ReturnType<typeof createLocalJWKSet>> => {
    // Concurrent verifications share one fetch.
    inflight ??= (async () => {
      lastAttemptAt = Date.now();
      try {
        const jwks = await opts.getJwks();
        keySet = createLocalJWKSet(jwks);
        fetchedAt = Date.now();
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

  const currentKeys = (): Promise<ReturnType<typeof createLocalJWKSet>> => {
    const fresh = keySet !== undefined && Date.now() - fetchedAt < maxAgeMs;
    const mayRetry = Date.now() - lastAttemptAt >= cooldownMs;
    if (keySet !== undefined && (fresh || !mayRetry)) return Promise.resolve(keySet);
    return fetchKeys();
  };

  const verifyWith = async (
    token: string,
    keys: ReturnType<typeof createLocalJWKSet>,
  ): Promise<Principal> => {
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ["EdDSA"],
      issuer: opts.issuer,
      audience: opts.audience,
      requiredClaims: ["exp", "sub"],
    });
    return toPrincipal(payload);
  };

  return {
    async verify(token) {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw invalidToken();
      const keys = await currentKeys();
      try {
        return await verifyWith(token, keys);
      } catch (error) {
        // A new kid usually means auth rotated its keys since we fetched them.
        if (error instanceof errors.JWKSNoMatchingKey && Date.now() - lastAttemptAt >= cooldownMs) {
          try {
            return await verifyWith(token, await fetchKeys());
          } catch (retryError) {
            throw toDomainError(retryError);
          }
        }
        throw toDomainError(error);
      }
    },
  };
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
  return { subject: sub, roles: [...roleList], kind: isService ? "service" : "user" };
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
