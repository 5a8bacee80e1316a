import { SignJWT } from "jose";
import { uuidv7 } from "uuidv7";
import type { ActiveSigningKey } from "./signing-keys.js";

// Access tokens: short-lived EdDSA JWTs every service verifies locally against GetJwks' keys.
// A user's token names its session (`sid`), so logout and revocation can refuse it before it
// expires; a service's token says `kind: "service"`, which the kit's INTERNAL policy requires.

export interface UserTokenSubject {
  userId: string;
  email: string;
  roles: readonly string[];
  sessionId: string;
  /** A second factor was used at sign-in (`amr` then lists `otp` besides `pwd`, RFC 8176). */
  twoFactor: boolean;
}

export interface IssuedAccessToken {
  token: string;
  expiresIn: number;
}

export interface AccessTokenIssuer {
  issueUserToken(subject: UserTokenSubject): Promise<IssuedAccessToken>;
  /** `sub` = `service:<clientId>`, `kind` = `service`, `roles` = [`service`]. */
  issueServiceToken(clientId: string): Promise<IssuedAccessToken>;
}

export const SERVICE_SUBJECT_PREFIX = "service:";

export function createAccessTokenIssuer(deps: {
  issuer: string;
  audience: string;
  ttlSeconds: number;
  serviceTtlSeconds?: number;
  signingKey: () => Promise<ActiveSigningKey>;
  /** Seconds since the epoch; injectable for tests. */
  now?: () => number;
}): AccessTokenIssuer {
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  const serviceTtl = deps.serviceTtlSeconds ?? 300;

  const sign = async (subject: string, claims: Record<string, unknown>, ttlSeconds: number) => {
    const { kid, privateKey } = await deps.signingKey();
    const iat = now();
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
      .setIssuer(deps.issuer)
      .setAudience(deps.audience)
      .setSubject(subject)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + ttlSeconds)
      .setJti(uuidv7())
      .sign(privateKey);
    return { token, expiresIn: ttlSeconds };
  };

  return {
    issueUserToken: (s) =>
      sign(
        s.userId,
        {
          roles: [...s.roles],
          email: s.email,
          sid: s.sessionId,
          amr: s.twoFactor ? ["pwd", "otp"] : ["pwd"],
        },
        deps.ttlSeconds,
      ),
    issueServiceToken: (clientId) =>
      sign(`${SERVICE_SUBJECT_PREFIX}${clientId}`, { kind: "service", roles: ["service"] }, serviceTtl),
  };
}
