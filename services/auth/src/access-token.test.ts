import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createAccessTokenIssuer } from "./access-token.js";

describe("createAccessTokenIssuer", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const jwk: JWK = {
    ...(publicKey.export({ format: "jwk" }) as JWK),
    kid: "key-1",
    alg: "EdDSA",
    use: "sig",
  };
  const issuer = createAccessTokenIssuer({
    issuer: "zero-auth",
    audience: "zero",
    ttlSeconds: 900,
    signingKey: () => Promise.resolve({ kid: "key-1", privateKey }),
  });

  it("issues an EdDSA JWT with kid, iss, aud, sub, roles, email, iat/nbf/exp and jti", async () => {
    const { token, expiresIn } = await issuer.issue({
      userId: "u-1",
      email: "a@example.com",
      roles: ["customer"],
    });
    expect(expiresIn).toBe(900);
    expect(decodeProtectedHeader(token)).toEqual({ alg: "EdDSA", kid: "key-1", typ: "JWT" });
    const { payload } = await jwtVerify(token, createLocalJWKSet({ keys: [jwk] }), {
      issuer: "zero-auth",
      audience: "zero",
      algorithms: ["EdDSA"],
    });
    expect(payload).toMatchObject({ sub: "u-1", email: "a@example.com", roles: ["customer"] });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("gives every token its own jti", async () => {
    const subject = { userId: "u-1", email: "a@example.com", roles: ["customer"] };
    const [a, b] = await Promise.all([issuer.issue(subject), issuer.issue(subject)]);
    const jti = (t: string) =>
      (JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as { jti: string }).jti;
    expect(jti(a.token)).not.toBe(jti(b.token));
  });
});
