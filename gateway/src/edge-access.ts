import type { DescMethod } from "@bufbuild/protobuf";
import { bearerToken } from "@zero/kit/access-policy";
import { DomainError } from "@zero/kit/errors";
import { accessPolicyOf } from "@zero/kit/principal";
import type { Principal, TokenVerifier } from "@zero/kit/principal";
import { Access } from "@zero/proto/zero/options/v1/access_pb";

// The method's `(zero.options.v1.access)` applied at the edge, identically for REST, Connect,
// gRPC and gRPC-Web. It differs from the kit's service-side policy on purpose: INTERNAL methods
// are for Zero's own services talking directly, so the gateway refuses them for everyone — a
// service token arriving from outside is as suspicious as no token at all — and so is the
// service-credentials exchange (IssueServiceToken), which only services inside may reach.
// The bearer token is forwarded unchanged; each service verifies it again (defence in depth).

export interface EdgeAccess {
  /**
   * Resolves the caller of a USER/ADMIN method (undefined for PUBLIC ones, which the service may
   * still identify from the forwarded token) or throws a DomainError to send in the protocol's form.
   */
  authorize(method: DescMethod, authorization: string | undefined): Promise<Principal | undefined>;
  /**
   * The caller behind a well-formed, valid token, or undefined (no token, or one that does not
   * verify): for decisions that depend on who calls without requiring anyone (per-user limits).
   */
  identify(authorization: string | undefined): Promise<Principal | undefined>;
}

export function createEdgeAccess(opts: { verifier: TokenVerifier | undefined }): EdgeAccess {
  const { verifier } = opts;
  // Reading a method option decodes extension data; the answer never changes, so once per method.
  const policies = new WeakMap<DescMethod, Access>();
  const policyOf = (method: DescMethod): Access => {
    let policy = policies.get(method);
    if (policy === undefined) {
      policy = accessPolicyOf(method);
      policies.set(method, policy);
    }
    return policy;
  };

  const authenticate = async (authorization: string | undefined): Promise<Principal> => {
    if (authorization === undefined || authorization === "") {
      throw new DomainError(
        "unauthenticated",
        "this call needs an access token: send `authorization: Bearer <token>`",
        { reason: "TOKEN_MISSING" },
      );
    }
    const token = bearerToken(authorization);
    if (token === undefined) {
      throw new DomainError(
        "unauthenticated",
        "the authorization header must have the form `Bearer <token>`",
        { reason: "TOKEN_MALFORMED" },
      );
    }
    if (verifier === undefined) {
      throw new DomainError(
        "unavailable",
        "access tokens cannot be verified: the gateway has no route to the auth service",
        { reason: "TOKEN_UNVERIFIABLE" },
      );
    }
    return verifier.verify(token);
  };

  return {
    async authorize(method, authorization) {
      switch (policyOf(method)) {
        case Access.PUBLIC:
          return undefined;
        case Access.USER:
          return authenticate(authorization);
        case Access.ADMIN: {
          const principal = await authenticate(authorization);
          if (!principal.roles.includes("admin")) {
            throw new DomainError("permission_denied", "this call needs the admin role", {
              reason: "ADMIN_REQUIRED",
            });
          }
          return principal;
        }
        case Access.INTERNAL:
        case Access.SERVICE_CREDENTIALS:
          throw new DomainError(
            "permission_denied",
            "this method is internal to Zero and is not reachable through the gateway",
            { reason: "METHOD_INTERNAL" },
          );
        default:
          throw new DomainError(
            "permission_denied",
            "this method declares no access policy, so nobody may call it",
            { reason: "ACCESS_UNDECLARED" },
          );
      }
    },

    async identify(authorization) {
      const token = authorization === undefined ? undefined : bearerToken(authorization);
      if (token === undefined || verifier === undefined) return undefined;
      return verifier.verify(token).catch(() => undefined);
    },
  };
}
