import { Code, ConnectError } from "@connectrpc/connect";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import { sql } from "kysely";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aRegistration, startTestAuth, type TestAuth } from "./fixtures.js";

let auth: TestAuth;
const registration = aRegistration({ email: "login@example.com", password: "a long enough password" });

beforeAll(async () => {
  auth = await startTestAuth();
  await auth.client.register(registration);
});

afterAll(async () => {
  await auth?.close();
});

async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

describe("Login", () => {
  it("issues an access token that verifies against GetJwks, and a refresh token", async () => {
    const res = await auth.client.login({ email: " LOGIN@example.com", password: registration.password });
    expect(res).toMatchObject({ tokenType: "Bearer", expiresIn: 900, refreshExpiresIn: 604_800 });
    expect(res.token).toBe(res.accessToken);
    expect(res.user).toMatchObject({ email: "login@example.com", roles: ["customer"] });
    expect(res.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url

    let cacheControl: string | null = null;
    const jwks = await auth.client.getJwks({}, { onHeader: (h) => (cacheControl = h.get("cache-control")) });
    expect(cacheControl).toBe("public, max-age=300");
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });

    const header = decodeProtectedHeader(res.accessToken);
    expect(header).toEqual({ alg: "EdDSA", kid: jwks.keys[0]!.kid, typ: "JWT" });
    const keys: JWK[] = jwks.keys.map(({ kty, crv, x, kid, alg, use }) => ({ kty, crv, x, kid, alg, use }));
    const { payload } = await jwtVerify(res.accessToken, createLocalJWKSet({ keys }), {
      issuer: "zero-auth",
      audience: "zero",
      algorithms: ["EdDSA"],
    });
    expect(payload.sub).toBe(res.user!.id);
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload).toMatchObject({ roles: ["customer"], email: "login@example.com" });
  });

  it("answers a wrong password and an unknown email identically", async () => {
    const wrong = await rpcError(
      auth.client.login({ email: registration.email, password: "not the right password" }),
    );
    const unknown = await rpcError(
      auth.client.login({ email: "nobody@example.com", password: registration.password }),
    );
    expect(wrong.code).toBe(Code.Unauthenticated);
    expect(unknown.code).toBe(Code.Unauthenticated);
    expect(wrong.rawMessage).toBe("invalid email or password");
    expect(unknown.rawMessage).toBe(wrong.rawMessage);
    expect(unknown.details.length).toBe(wrong.details.length);
  });

  it("refuses missing fields with invalid_argument", async () => {
    const error = await rpcError(auth.client.login({ email: "", password: "" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/email.*password/);
  });

  it("stores the refresh token only as its SHA-256", async () => {
    const { refreshToken, user } = await auth.client.login({
      email: registration.email,
      password: registration.password,
    });
    const expectedHash = createHash("sha256").update(refreshToken).digest();
    const row = await auth.server.db
      .selectFrom("refresh_tokens")
      .selectAll()
      .where("token_hash", "=", expectedHash)
      .executeTakeFirstOrThrow();
    expect(row.user_id).toBe(user!.id);
    const ttl = (row.expires_at.getTime() - row.created_at.getTime()) / 1000;
    expect(ttl).toBe(604_800);

    // Nowhere in the service's tables: not as text, not as the bytes it encodes.
    const tokenBytesHex = Buffer.from(refreshToken, "base64url").toString("hex");
    for (const table of ["refresh_tokens", "users", "kit_outbox", "signing_keys"]) {
      const { rows } = await sql<{ dump: string }>`select t::text as dump from ${sql.table(table)} t`.execute(
        auth.server.db,
      );
      for (const { dump } of rows) {
        expect(dump).not.toContain(refreshToken);
        expect(dump).not.toContain(tokenBytesHex);
      }
    }
  });
});
