import type { DescMethod } from "@bufbuild/protobuf";
import { DomainError } from "@zero/kit/errors";
import { accessPolicyOf } from "@zero/kit/principal";
import type { Principal, TokenVerifier } from "@zero/kit/principal";
import { Access } from "@zero/proto/zero/options/v1/access_pb";

// The method's `(zero.options.v1.access)` applied at the edge, identically for REST, Connect,
// gRPC and gRPC-Web. It differs from the kit's service-side policy on purpose: INTERNAL methods
// are for Zero's own services talking directly, so the gateway refuses them for everyone — a
// service token arriving from outside is as suspicious as no token at all.

export interface EdgeAccess {
  /**
   * Resolves the caller of a USER/ADMIN method (undefined for PUBLIC ones, which the service may
   * still identify from the forwarded token) or throws a DomainError to send in the protocol's form.
   */
  authorize(method: DescMethod, authorization: string | undefined): Promise<Principal | undefined>;
}

const bearer = /^Bearer +([^ ]+) *$/i;

export function createEdgeAccess(opts: { verifier: TokenVerifier | undefined }): EdgeAccess {
  const authenticate = async (authorization: string | undefined): Promise<Principal> => {
    if (authorization === undefined || authorization === "") {
      throw new DomainError(
        "unauthenticated",
        "this call needs an access token: send `authorization: Bearer <token>`",
        {
          reason: "TOKEN_MISSING",
        },
      );
    }
    const token = bearer.exec(authorization)?.[1];
    if (token === undefined) {
      throw new DomainError(
        "unauthenticated",
        "the authorization header must have the form `Bearer <token>`",
        {
          reason: "TOKEN_MALFORMED",
        },
      );
    }
    if (opts.verifier === undefined) {
      throw new DomainError(
        "unavailable",
        "access tokens cannot be verified: the gateway has no route to the auth service",
        {
          reason: "TOKEN_UNVERIFIABLE",
        },
      );
    }
    return opts.verifier.verify(token);
  };

  return {
    async authorize(method, authorization) {
      switch (accessPolicyOf(method)) {
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
          throw new DomainError(
            "permission_denied",
            "this method is internal to Zero and is not reachable through the gateway",
            {
              reason: "METHOD_INTERNAL",
            },
          );
        default:
          throw new DomainError(
            "permission_denied",
            "this method declares no access policy, so nobody may call it",
            {
              reason: "ACCESS_UNDECLARED",
            },
          );
      }
    },
  };
}
