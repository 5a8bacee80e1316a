import { Code } from "@connectrpc/connect";
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from "jose";
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSecret } from "../src/tokens/sealed-secret.js";
import { rpcError, startTestAuth, type SignedIn, type TestAuth } from "./fixtures.js";

// The JWT attack set against a real auth service: every forged, altered or stale token is refused
// with UNAUTHENTICATED (never a 5xx), and a valid one is accepted — so each refusal is meaningful.

let auth: TestAuth;
let user: SignedIn;
let kid: string;
let authKey: KeyObject;

beforeAll(async () => {
  auth = await startTestAuth();
  user = await auth.signUp();
  // auth's own private key, as a thief of the database AND the key-encryption key would have it.
  const row = await auth.server.db
    .selectFrom("signing_keys")
    .selectAll()
    .where("status", "=", "active")
    .executeTakeFirstOrThrow();
  kid = row.kid;
  const der = openSecret(
    row.private_key_encrypted,
    Buffer.from(auth.keyEncryptionKey, "base64"),
    kid,
    "test",
  );
  authKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
});

afterAll(async () => {
  await auth?.close();
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
const validClaims = (): JWTPayload => ({
  sub: user.userId,
  iss: "zero-auth",
  aud: "zero",
  iat: now(),
  nbf: now(),
  exp: now() + 600,
  roles: ["customer", "admin"],
  jti: randomUUID(),
});

function signWithAuthKey(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", kid, typ: "JWT", ...header }).sign(authKey);
}

async function refused(token: string, reason?: RegExp): Promise<void> {
  const error = await rpcError(auth.as(token).auth.getMe({}));
  expect(error.code, error.rawMessage).toBe(Code.Unauthenticated);
  if (reason) expect(error.rawMessage).toMatch(reason);
}

describe("JWT attack set", () => {
  it("accepts a correctly signed token (the control case)", async () => {
    await expect(auth.as(user.accessToken).auth.getMe({})).resolves.toMatchObject({
      user: { id: user.userId },
    });
    await expect(auth.as(await signWithAuthKey(validClaims())).auth.getMe({})).resolves.toBeDefined();
  });

  it.each(["none", "None", "NONE", "nOnE"])("refuses alg %j (unsigned)", async (alg) => {
    const unsigned = `${b64({ alg, typ: "JWT", kid })}.${b64(validClaims())}.`;
    await refused(unsigned);
    // …and with the original signature kept.
    const [, , signature] = user.accessToken.split(".");
    await refused(`${b64({ alg, typ: "JWT", kid })}.${b64(validClaims())}.${signature}`);
  });

  it("refuses HS256 signed with the public key (algorithm confusion)", async () => {
    const { keys } = await auth.client.getJwks({});
    const jwk = keys[0]!;
    const publicKey = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x }, format: "jwk" });
    const secrets = [
      Buffer.from(jwk.x, "base64url"),
      Buffer.from(jwk.x),
      Buffer.from(publicKey.export({ format: "pem", type: "spki" })),
      publicKey.export({ format: "der", type: "spki" }),
    ];
    for (const secret of secrets) {
      const token = await new SignJWT(validClaims())
        .setProtectedHeader({ alg: "HS256", kid, typ: "JWT" })
        .sign(secret);
      await refused(token);
    }
  });

  it("refuses RS256 and ES256 tokens even under auth's kid", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      const { privateKey } = await generateKeyPair(alg);
      await refused(await new SignJWT(validClaims()).setProtectedHeader({ alg, kid }).sign(privateKey));
    }
  });

  it("refuses an unknown kid, injected kids, and keys embedded in the header", async () => {
    const attacker = await generateKeyPair("EdDSA", { crv: "Ed25519" });
    const sign = (header: Record<string, unknown>) =>
      new SignJWT(validClaims()).setProtectedHeader({ alg: "EdDSA", ...header }).sign(attacker.privateKey);
    await refused(await sign({ kid: randomUUID() }), /unknown key|invalid/);
    for (const injected of ["../../../../dev/null", "' OR '1'='1", "x".repeat(4000), "", kid + "\u0000"]) {
      await refused(await sign({ kid: injected }));
    }
    // The attacker's key offered in the header itself (jwk, jku, x5u) is never trusted.
    const jwk = await exportJWK(attacker.publicKey);
    await refused(await sign({ kid, jwk }));
    await refused(await sign({ kid, jku: "https://attacker.example/jwks.json" }));
    await refused(await sign({ kid, x5u: "https://attacker.example/cert.pem" }));
    // Right kid, wrong key.
    await refused(await sign({ kid }));
  });

  it("refuses expired, not-yet-valid, wrong issuer, wrong audience and exp-less tokens", async () => {
    await refused(
      await signWithAuthKey({ ...validClaims(), iat: now() - 1000, nbf: now() - 1000, exp: now() - 10 }),
      /expired/,
    );
    await refused(await signWithAuthKey({ ...validClaims(), nbf: now() + 600 }), /not valid yet/);
    await refused(
      await signWithAuthKey({ ...validClaims(), iss: "https://evil.example" }),
      /not issued for this platform/,
    );
    await refused(
      await signWithAuthKey({ ...validClaims(), aud: "another-platform" }),
      /not issued for this platform/,
    );
    const { exp: _exp, ...noExp } = validClaims();
    await refused(await signWithAuthKey(noExp));
  });

  it("refuses a tampered payload (roles raised) with the original signature", async () => {
    const [header, payload, signature] = user.accessToken.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as JWTPayload;
    const raised = b64({ ...claims, roles: ["customer", "admin"] });
    const forged = `${header}.${raised}.${signature}`;
    await refused(forged);
    const admin = await rpcError(auth.as(forged).admin.listUsers({}));
    expect(admin.code).toBe(Code.Unauthenticated);
    await refused(`${header}.${payload}.`);
    await refused(`${header}.${payload}`);
    await refused("not-a-jwt");
  });

  it("refuses a well-signed token for an account that does not exist", async () => {
    await refused(await signWithAuthKey({ ...validClaims(), sub: randomUUID() }), /revoked/);
  });

  it("refuses the tokens of a session after logout and after refresh-token reuse", async () => {
    const a = await auth.signUp();
    await auth.as(a.accessToken).auth.logout({});
    await refused(a.accessToken, /revoked/);

    const b = await auth.signUp();
    await auth.client.refreshToken({ refreshToken: b.refreshToken });
    await auth.server.db
      .updateTable("refresh_tokens")
      .set({ spent_at: new Date(Date.now() - 60_000) })
      .where("user_id", "=", b.userId)
      .where("spent_at", "is not", null)
      .execute();
    await rpcError(auth.client.refreshToken({ refreshToken: b.refreshToken }));
    await refused(b.accessToken, /revoked/);
  });
});
