import { SignJWT } from "jose";
import { uuidv7 } from "uuidv7";
import type { ActiveSigningKey } from "./signing-keys.js";

// Access tokens: short-lived EdDSA JWTs every service verifies locally against GetJwks' keys.

export interface AccessTokenSubject {
  userId: string;
  email: string;
  roles: readonly string[];
}

export interface AccessTokenIssuer {
  issue(subject: AccessTokenSubject): Promise<{ token: string; expiresIn: number }>;
}

export function createAccessTokenIssuer(deps: {
  issuer: string;
  audience: string;
  ttlSeconds: number;
  signingKey: () => Promise<ActiveSigningKey>;
  /** Seconds since the epoch; injectable for tests. */
  now?: () => number;
}): AccessTokenIssuer {
  const now = deps.now ?? (() => Math.floor(Date.now() / 1000));
  return {
    async issue(subject) {
      const { kid, privateKey } = await deps.signingKey();
      const iat = now();
      const token = await new SignJWT({ roles: [...subject.roles], email: subject.email })
        .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
        .setIssuer(deps.issuer)
        .setAudience(deps.audience)
        .setSubject(subject.userId)
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + deps.ttlSeconds)
        .setJti(uuidv7())
        .sign(privateKey);
      return { token, expiresIn: deps.ttlSeconds };
    },
  };
}
