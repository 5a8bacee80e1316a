import { describe, expect, it } from "vitest";
import { SignJWT, base64url, exportJWK, generateKeyPair } from "jose";
import type { CryptoKey, JWK, JWTPayload } from "jose";
import { DomainError } from "./errors.js";
import { createTokenVerifier } from "./principal.js";

const ISSUER = "https://auth.zero.test";
const AUDIENCE = "zero";

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function aSigningKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" } };
}

async function aToken(
  key: SigningKey,
  claims: JWTPayload = {},
  opts: { expiresIn?: string | number } = {},
): Promise<string> {
  // Claims given by the test override the defaults (wrong iss, wrong aud, ...).
  return new SignJWT({ sub: "user-1", iss: ISSUER, aud: AUDIENCE, roles: ["user"], ...claims })
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? "15m")
    .sign(key.privateKey);
}

function aVerifier(jwks: () => JWK[], opts: { refetchCooldownMs?: number } = {}) {
  let fetches = 0;
  const verifier = createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    getJwks: () => {
      fetches++;
      return Promise.resolve({ keys: jwks() });
    },
    ...opts,
  });
  return { verifier, fetches: () => fetches };
}

async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error("expected the token to be rejected");
}

describe("createTokenVerifier", () => {
  it("accepts a valid token and derives the principal", async () => {
    const key = await aSigningKey("k1");
    const { verifier, fetches } = aVerifier(() => [key.publicJwk]);
    await expect(verifier.verify(await aToken(key, { roles: ["user", "admin"] }))).resolves.toEqual({
      subject: "user-1",
      roles: ["user", "admin"],
      kind: "user",
    });
    // The key set is cached: a second token does not refetch it.
    await verifier.verify(await aToken(key));
    expect(fetches()).toBe(1);
  });

  it("recognises service tokens by the kind claim only, never by a role", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    expect((await verifier.verify(await aToken(key, { roles: ["service"] }))).kind).toBe("user");
    expect((await verifier.verify(await aToken(key, { roles: [], kind: "service" }))).kind).toBe("service");
  });

  it("rejects alg none", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const now = Math.floor(Date.now() / 1000);
    const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT", kid: "k1" }));
    const payload = base64url.encode(
      JSON.stringify({ sub: "admin", iss: ISSUER, aud: AUDIENCE, exp: now + 600, roles: ["admin"] }),
    );
    const error = await rejection(verifier.verify(`${header}.${payload}.`));
    expect(error.code).toBe("unauthenticated");
    expect(error.reason).toBe("TOKEN_INVALID");
  });

  it("rejects HS256 signed with the public key bytes (algorithm confusion)", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const secret = base64url.decode(key.publicJwk.x ?? "");
    const token = await new SignJWT({ roles: ["admin"] })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .setSubject("admin")
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("15m")
      .sign(secret);
    expect((await rejection(verifier.verify(token))).code).toBe("unauthenticated");
  });

  it("rejects an unknown kid", async () => {
    const known = await aSigningKey("k1");
    const stranger = await aSigningKey("k-unknown");
    const { verifier } = aVerifier(() => [known.publicJwk], { refetchCooldownMs: 0 });
    const error = await rejection(verifier.verify(await aToken(stranger)));
    expect(error.message).toMatch(/unknown key/);
  });

  it("rejects an expired token", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const token = await aToken(key, {}, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const error = await rejection(verifier.verify(token));
    expect(error.reason).toBe("TOKEN_EXPIRED");
    expect(error.message).toMatch(/expired/);
  });

  it("rejects a token whose nbf is in the future", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const token = await aToken(key, { nbf: Math.floor(Date.now() / 1000) + 600 });
    expect((await rejection(verifier.verify(token))).reason).toBe("TOKEN_NOT_YET_VALID");
  });

  it("rejects the wrong issuer and the wrong audience", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const wrongIss = await aToken(key, { iss: "https://evil.example" });
    const wrongAud = await aToken(key, { aud: "someone-else" });
    expect((await rejection(verifier.verify(wrongIss))).message).toMatch(/not issued for this platform/);
    expect((await rejection(verifier.verify(wrongAud))).message).toMatch(/not issued for this platform/);
  });

  it("rejects a token without exp or sub", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const noExp = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "k1" })
      .setSubject("u")
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .sign(key.privateKey);
    const noSub = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("5m")
      .sign(key.privateKey);
    expect((await rejection(verifier.verify(noExp))).code).toBe("unauthenticated");
    expect((await rejection(verifier.verify(noSub))).code).toBe("unauthenticated");
  });

  it("rejects a tampered payload", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    const [header, payload, signature] = (await aToken(key)).split(".");
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload ?? ""))) as JWTPayload;
    const forged = base64url.encode(JSON.stringify({ ...claims, roles: ["admin"] }));
    expect((await rejection(verifier.verify(`${header}.${forged}.${signature}`))).reason).toBe(
      "TOKEN_INVALID",
    );
  });

  it("rejects malformed input and bad roles", async () => {
    const key = await aSigningKey("k1");
    const { verifier } = aVerifier(() => [key.publicJwk]);
    expect((await rejection(verifier.verify("not-a-jwt"))).code).toBe("unauthenticated");
    expect((await rejection(verifier.verify(""))).code).toBe("unauthenticated");
    expect((await rejection(verifier.verify(await aToken(key, { roles: "admin" })))).code).toBe(
      "unauthenticated",
    );
  });

  it("follows key rotation: a new kid is accepted after one refetch, with a cool-down", async () => {
    const oldKey = await aSigningKey("k1");
    const newKey = await aSigningKey("k2");
    let published = [oldKey.publicJwk];
    const { verifier, fetches } = aVerifier(() => published, { refetchCooldownMs: 200 });

    await verifier.verify(await aToken(oldKey));
    expect(fetches()).toBe(1);

    // Auth rotates: the new key is published. Within the cool-down the unknown kid is refused
    // without hammering the JWKS endpoint.
    published = [newKey.publicJwk, oldKey.publicJwk];
    const rotated = await aToken(newKey);
    await rejection(verifier.verify(rotated));
    expect(fetches()).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 250));
    await expect(verifier.verify(rotated)).resolves.toMatchObject({ subject: "user-1" });
    expect(fetches()).toBe(2);
    // Old tokens keep working while their key is still published.
    await expect(verifier.verify(await aToken(oldKey))).resolves.toMatchObject({ subject: "user-1" });
    expect(fetches()).toBe(2);
  });

  it("answers unavailable when the keys cannot be fetched", async () => {
    const key = await aSigningKey("k1");
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      getJwks: () => Promise.reject(new Error("connect ECONNREFUSED")),
    });
    const error = await rejection(verifier.verify(await aToken(key)));
    expect(error.code).toBe("unavailable");
    expect(error.message).not.toContain("ECONNREFUSED");
  });
});
