import type { Interceptor } from "@connectrpc/connect";
import { Access } from "@zero/proto/zero/options/v1/access_pb";
import { DomainError } from "./errors.js";
import { accessPolicyOf, principalKey } from "./principal.js";
import type { Principal, TokenVerifier } from "./principal.js";

export interface AccessPolicyOptions {
  verifier?: TokenVerifier;
  /** Services open to everyone whatever their methods declare: the kit's health and reflection. */
  publicServices: ReadonlySet<string>;
}

const BEARER = /^Bearer +([^ ]+) *$/i;

/** The token of an `authorization: Bearer <token>` header; undefined for any other form. Shared with the gateway. */
export function bearerToken(header: string): string | undefined {
  return BEARER.exec(header)?.[1];
}

function authenticationRequired(message: string, reason: string): DomainError {
  return new DomainError("unauthenticated", message, { reason });
}

/**
 * Enforces the method's `(zero.options.v1.access)` option and publishes the caller's principal
 * under `principalKey`. A method without the option is refused: forgetting to decide is never
 * the same as deciding "public".
 */
export function createAccessPolicyInterceptor(opts: AccessPolicyOptions): Interceptor {
  const { verifier, publicServices } = opts;

  const authenticate = async (header: string | null): Promise<Principal> => {
    if (header === null) {
      throw authenticationRequired(
        "this call needs an access token: send `authorization: Bearer <token>`",
        "TOKEN_MISSING",
      );
    }
    const token = bearerToken(header);
    if (token === undefined) {
      throw authenticationRequired(
        "the authorization header must have the form `Bearer <token>`",
        "TOKEN_MALFORMED",
      );
    }
    if (verifier === undefined) {
      throw authenticationRequired(
        "this service is not configured to verify access tokens",
        "TOKEN_UNVERIFIABLE",
      );
    }
    return verifier.verify(token);
  };

  return (next) => async (req) => {
    const policy = publicServices.has(req.service.typeName) ? Access.PUBLIC : accessPolicyOf(req.method);
    const header = req.header.get("authorization");
    let principal: Principal | undefined;

    switch (policy) {
      case Access.PUBLIC: {
        // A valid token still identifies the caller; a bad one is ignored, as if none were sent.
        const token = header === null ? undefined : bearerToken(header);
        if (token !== undefined && verifier !== undefined) {
          principal = await verifier.verify(token).catch(() => undefined);
        }
        break;
      }
      case Access.USER:
        principal = await authenticate(header);
        break;
      case Access.ADMIN:
        principal = await authenticate(header);
        if (!principal.roles.includes("admin")) {
          throw new DomainError("permission_denied", "this call needs the admin role", {
            reason: "ADMIN_REQUIRED",
          });
        }
        break;
      case Access.INTERNAL:
        principal = await authenticate(header);
        if (principal.kind !== "service") {
          throw new DomainError("permission_denied", "this call is reserved for Zero's own services", {
            reason: "SERVICE_REQUIRED",
          });
        }
        break;
      case Access.SERVICE_CREDENTIALS:
        // The request's own client credentials authenticate it (the handler checks them); a
        // bearer token proves nothing here and is ignored, so the principal stays unset.
        break;
      default:
        throw new DomainError(
          "permission_denied",
          "this method declares no access policy, so nobody may call it",
          {
            reason: "ACCESS_UNDECLARED",
          },
        );
    }

    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
