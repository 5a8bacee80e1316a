import { randomUUID } from "node:crypto";
import { createTokenVerifier, type TokenVerifier } from "@zero/kit/principal";
import { SignJWT, exportJWK, generateKeyPair, type JWK } from "jose";

/** What a test token says; `sub` is required, the rest has the defaults of an ordinary user's token. */
export interface TestClaims {
  sub: string;
  /** Default `["customer"]`. */
  roles?: string[];
  /** `"service"` for a service token (what auth's IssueServiceToken sets). */
  kind?: string;
  /** Default: the issuer's audience (set another to test a token meant for someone else). */
  aud?: string;
  /** A jose time span ("15m", "-1m" for an expired token); default "15m". */
  expiresIn?: string;
  /** Anything else to put in the payload, e.g. `sid` or `email`. */
  extra?: Record<string, unknown>;
}

export interface TokenIssuer {
  issuer: string;
  audience: string;
  /** What auth's GetJwks would publish for this key. */
  jwks: { keys: JWK[] };
  /** The kit's verifier trusting this key (and this issuer and audience), as a service would build it. */
  verifier: TokenVerifier;
  /** An EdDSA access token with these claims. */
  sign(claims: TestClaims): Promise<string>;
  /** A user's access token (roles default `["customer"]`). */
  user(sub: string, roles?: string[]): Promise<string>;
  /** A service token as auth's IssueServiceToken answers it: `sub` = `service:<name>`, `kind: "service"`. */
  service(name: string): Promise<string>;
}

/**
 * A signing key of the test's own, standing in for auth: an Ed25519 key (generated per call), the
 * JWKS auth would publish for it, and tokens shaped like auth's. Defaults are auth's own issuer
 * (`zero-auth`) and audience (`zero`).
 */
export async function createTokenIssuer(
  opts: { issuer?: string; audience?: string } = {},
): Promise<TokenIssuer> {
  const issuer = opts.issuer ?? "zero-auth";
  const audience = opts.audience ?? "zero";
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const kid = randomUUID();
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }] };
  const sign = ({
    sub,
    roles = ["customer"],
    kind,
    aud = audience,
    expiresIn = "15m",
    extra = {},
  }: TestClaims) =>
    new SignJWT({ ...extra, roles, ...(kind === undefined ? {} : { kind }) })
      .setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT" })
      .setSubject(sub)
      .setIssuer(issuer)
      .setAudience(aud)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(privateKey);
  return {
    issuer,
    audience,
    jwks,
    verifier: createTokenVerifier({ issuer, audience, getJwks: () => Promise.resolve(jwks) }),
    sign,
    user: (sub, roles) => sign({ sub, ...(roles === undefined ? {} : { roles }) }),
    service: (name) => sign({ sub: `service:${name}`, roles: ["service"], kind: "service" }),
  };
}
