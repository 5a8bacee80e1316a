import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import type { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { createHash, timingSafeEqual } from "node:crypto";
import { clientContext } from "./client-context.js";
import { countedAddress, throttled } from "./credentials/login-throttle.js";
import type { Throttle } from "./credentials/throttle.js";
import type { AccessTokenIssuer } from "./tokens/access-token.js";

// Client credentials of Zero's services (AUTH_SERVICE_CLIENTS: `name:sha256(secret)`), exchanged
// for 5-minute service tokens. The secrets are 256 random bits, so a plain SHA-256 is a sound
// verifier (nothing to brute-force; a salt or argon2 would add cost, not safety), and the digest
// comparison runs in constant time. An unknown client id is compared against a digest no secret
// has, so the answer takes as long either way. Failures are throttled per client id and per
// address: a guessing caller is slowed long before a 256-bit secret could matter.

const INVALID = "invalid client credentials";
const NO_SECRET_DIGEST = createHash("sha256").update("zero-auth: no client has this secret").digest();

export function createServiceIdentityService(deps: {
  clients: ReadonlyMap<string, Buffer>;
  accessTokens: AccessTokenIssuer;
  /** Failures per client id. */
  clientThrottle: Throttle;
  /** Failures per caller address. */
  addressThrottle: Throttle;
  logger: Logger;
}): ServiceImpl<typeof ServiceIdentityService> {
  const { clients, clientThrottle, addressThrottle, logger } = deps;
  return {
    async issueServiceToken(req, ctx) {
      const violations: FieldViolation[] = [];
      if (req.clientId === "") violations.push({ field: "client_id", description: "is required" });
      if (req.clientSecret === "") violations.push({ field: "client_secret", description: "is required" });
      if (violations.length > 0) throw invalidArguments(violations);

      const clientId = req.clientId.trim().toLowerCase();
      // Calls from this host or without an address share no counter (one misconfigured service
      // must not lock the others out); each client id has its own anyway.
      const address = countedAddress(clientContext(ctx).ip);
      const waitMs = Math.max(
        await clientThrottle.retryAfterMs(clientId),
        address === null ? 0 : await addressThrottle.retryAfterMs(address),
      );
      if (waitMs > 0) throw throttled(waitMs, "failed service credentials");

      const expected = clients.get(clientId) ?? NO_SECRET_DIGEST;
      const given = createHash("sha256").update(req.clientSecret, "utf8").digest();
      const matches = timingSafeEqual(expected, given) && clients.has(clientId);
      if (!matches) {
        await Promise.all([
          clientThrottle.fail(clientId),
          address === null ? undefined : addressThrottle.fail(address),
        ]);
        // The id only (it is not a secret): an operator sees which service is misconfigured.
        logger.warn({ client_id: clientId.slice(0, 64), ip: address }, "service credentials refused");
        throw new DomainError("unauthenticated", INVALID, { reason: "CLIENT_CREDENTIALS_INVALID" });
      }
      await clientThrottle.reset(clientId);
      const issued = await deps.accessTokens.issueServiceToken(clientId);
      return { accessToken: issued.token, tokenType: "Bearer", expiresIn: issued.expiresIn };
    },
  };
}
