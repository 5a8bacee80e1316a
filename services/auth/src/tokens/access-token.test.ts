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
  const keys = createLocalJWKSet({ keys: [jwk] });
  const issuer = createAccessTokenIssuer({
    issuer: "zero-auth",
    audience: "zero",
    ttlSeconds: 900,
    signingKey: () => Promise.resolve({ kid: "key-1", privateKey }),
  });
  const subject = {
    userId: "u-1",
    email: "a@example.com",
    roles: ["customer"],
    sessionId: "s-1",
    twoFactor: false,
  };

  it("issues an EdDSA JWT with kid, iss, aud, sub, roles, email, sid, amr, iat/nbf/exp and jti", async () => {
    const { token, expiresIn } = await issuer.issueUserToken(subject);
    expect(expiresIn).toBe(900);
    expect(decodeProtectedHeader(token)).toEqual({ alg: "EdDSA", kid: "key-1", typ: "JWT" });
    const { payload } = await jwtVerify(token, keys, {
      issuer: "zero-auth",
      audience: "zero",
      algorithms: ["EdDSA"],
    });
    expect(payload).toMatchObject({
      sub: "u-1",
      email: "a@example.com",
      roles: ["customer"],
      sid: "s-1",
      amr: ["pwd"],
    });
    expect(payload).not.toHaveProperty("kind");
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("records a second factor in amr", async () => {
    const { token } = await issuer.issueUserToken({ ...subject, twoFactor: true });
    const { payload } = await jwtVerify(token, keys);
    expect(payload.amr).toEqual(["pwd", "otp"]);
  });

  it("gives every token its own jti", async () => {
    const [a, b] = await Promise.all([issuer.issueUserToken(subject), issuer.issueUserToken(subject)]);
    const jti = (t: string) =>
      (JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as { jti: string }).jti;
    expect(jti(a.token)).not.toBe(jti(b.token));
  });

  it("issues 5-minute service tokens that say so", async () => {
    const { token, expiresIn } = await issuer.issueServiceToken("payments");
    expect(expiresIn).toBe(300);
    const { payload } = await jwtVerify(token, keys, { issuer: "zero-auth", audience: "zero" });
    expect(payload).toMatchObject({ sub: "service:payments", kind: "service", roles: ["service"] });
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload).not.toHaveProperty("email");
  });
});
