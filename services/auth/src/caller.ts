import type { HandlerContext } from "@connectrpc/connect";
import { bearerToken } from "@zero/kit/access-policy";
import { DomainError } from "@zero/kit/errors";
import { requirePrincipal } from "@zero/kit/principal";
import { decodeJwt } from "jose";

// The signed-in caller of a USER method: the account and the session its access token belongs to.

export interface Caller {
  userId: string;
  /** The token's `sid`; undefined for tokens issued before sessions existed. */
  sessionId: string | undefined;
  roles: string[];
  /** The token's `exp`, seconds since the epoch. */
  expiresAt: number;
}

export function callerOf(ctx: HandlerContext): Caller {
  const principal = requirePrincipal(ctx);
  // A service token is valid for USER methods' policy, but it has no account or session.
  if (principal.kind === "service") {
    throw new DomainError("permission_denied", "this call is for signed-in users, not services", {
      reason: "USER_REQUIRED",
    });
  }
  // The kit's access policy has verified exactly this header's token before the handler runs, so
  // reading its claims again needs no second verification.
  const token = bearerToken(ctx.requestHeader.get("authorization") ?? "") ?? "";
  const claims = decodeJwt(token);
  return {
    userId: principal.subject,
    sessionId: typeof claims["sid"] === "string" ? claims["sid"] : undefined,
    roles: principal.roles,
    expiresAt: claims.exp ?? 0,
  };
}
