import { Code } from "@connectrpc/connect";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import {
  LoginFailedSchema,
  LoginFailureReason,
  UserLoggedInSchema,
} from "@zero/proto/zero/auth/v1/events_pb";
import argon2 from "argon2";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK } from "jose";
import { sql } from "kysely";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aRegistration, rpcError, startTestAuth, waitForEvents, type TestAuth } from "./fixtures.js";

let auth: TestAuth;
const registration = aRegistration({ email: "login@example.com", password: "a long enough password" });

beforeAll(async () => {
  // Stronger than the OWASP floor, so hashes made at the floor are due for a rehash.
  auth = await startTestAuth({ AUTH_ARGON2_TIME_COST: "3" });
  await auth.client.register(registration);
});

afterAll(async () => {
  await auth?.close();
});

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
    expect(payload).toMatchObject({ roles: ["customer"], email: "login@example.com", amr: ["pwd"] });
    expect(payload["sid"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
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

  it("refuses a NUL or another control character in the email with invalid_argument naming it", async () => {
    for (const [email, description] of [
      ["a\u0000b@example.com", "must not contain the NUL character (U+0000)"],
      ["login\u0000@example.com", "must not contain the NUL character (U+0000)"],
      ["a\u0001b@example.com", "must not contain spaces or control characters"],
    ] as const) {
      const error = await rpcError(auth.client.login({ email, password: "x" }));
      expect(error.code).toBe(Code.InvalidArgument);
      const violations = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      expect(violations).toMatchObject([{ field: "email", description }]);
    }
  });

  it("answers a NUL in the password exactly like a wrong password (it only ever reaches argon2)", async () => {
    const wrong = await rpcError(
      auth.client.login({ email: registration.email, password: "wrong password" }),
    );
    const nul = await rpcError(
      auth.client.login({ email: registration.email, password: `${registration.password}\u0000` }),
    );
    expect(nul.code).toBe(Code.Unauthenticated);
    expect(nul.rawMessage).toBe(wrong.rawMessage);
    expect(nul.details.length).toBe(wrong.details.length);
  });

  it("refuses a NUL in the other anonymous requests' text with invalid_argument naming the field", async () => {
    // Thunks: each call starts only when awaited (a rejected promise must not sit unobserved).
    const calls: [string, () => Promise<unknown>][] = [
      ["email", () => auth.client.requestPasswordReset({ email: "a\u0000b@example.com" })],
      ["code", () => auth.client.verifyEmail({ code: "12\u000034" })],
      ["code", () => auth.client.resetPassword({ code: "\u0000", newPassword: "a long enough password" })],
      ["refresh_token", () => auth.client.refreshToken({ refreshToken: "\u0000" })],
      ["mfa_token", () => auth.client.completeLogin({ mfaToken: "t\u0000", code: "123456" })],
    ];
    for (const [field, call] of calls) {
      const error = await rpcError(call());
      expect({ field, code: error.code }).toEqual({ field, code: Code.InvalidArgument });
      const violations = error.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
      expect(violations.map((v) => v.field)).toEqual([field]);
    }
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

describe("Login throttling", () => {
  it("locks an account after 5 failures, even for the right password, and says when to retry", async () => {
    const { email, password } = await auth.signUp();
    for (let i = 0; i < 5; i++) {
      expect((await rpcError(auth.client.login({ email, password: `wrong password ${i}` }))).code).toBe(
        Code.Unauthenticated,
      );
    }
    // The 6th failure starts the delay (1 s, then doubling).
    await rpcError(auth.client.login({ email, password: "wrong password 6" }));
    const locked = await rpcError(auth.client.login({ email, password }));
    expect(locked.code).toBe(Code.ResourceExhausted);
    expect(locked.rawMessage).toMatch(/too many failed sign-in attempts: try again in \d+ seconds?/);
  });

  it("behaves the same for an email nobody has (no way to tell which accounts exist)", async () => {
    const codes = async (email: string) => {
      const seen: Code[] = [];
      for (let i = 0; i < 7; i++)
        seen.push((await rpcError(auth.client.login({ email, password: `guess number ${i}` }))).code);
      return seen;
    };
    const existing = await auth.signUp();
    const [known, unknown] = await Promise.all([
      codes(existing.email),
      codes(`nobody-${Date.now()}@example.com`),
    ]);
    expect(unknown).toEqual(known);
    expect(known.slice(0, 6)).toEqual(Array.from({ length: 6 }, () => Code.Unauthenticated));
    expect(known[6]).toBe(Code.ResourceExhausted);
  });

  it("throttles one address guessing across many accounts", async () => {
    const client = auth.anonymous({ "x-forwarded-for": "198.51.100.23" }).auth;
    const codes: Code[] = [];
    for (let i = 0; i < 22; i++) {
      codes.push(
        (
          await rpcError(
            client.login({ email: `spray-${i}-${Date.now()}@example.com`, password: "Summer2024!!" }),
          )
        ).code,
      );
    }
    expect(codes.slice(0, 20).every((c) => c === Code.Unauthenticated)).toBe(true);
    expect(codes.at(-1)).toBe(Code.ResourceExhausted);
    // Another address is not affected.
    await expect(
      auth
        .anonymous({ "x-forwarded-for": "198.51.100.24" })
        .auth.login({ email: registration.email, password: registration.password }),
    ).resolves.toBeDefined();
  });

  it("keeps no address counter for this host itself (loopback is every local client at once)", async () => {
    const client = auth.anonymous({ "x-forwarded-for": "127.0.0.1" }).auth;
    for (let i = 0; i < 22; i++) {
      const error = await rpcError(
        client.login({ email: `local-${i}-${Date.now()}@example.com`, password: "Summer2024!!" }),
      );
      expect(error.code).toBe(Code.Unauthenticated);
    }
  });

  it("clears an account's failures on success", async () => {
    const { email, password } = await auth.signUp();
    for (let i = 0; i < 4; i++) await rpcError(auth.client.login({ email, password: `wrong password ${i}` }));
    await auth.client.login({ email, password });
    for (let i = 0; i < 5; i++) {
      expect((await rpcError(auth.client.login({ email, password: `wrong again ${i}` }))).code).toBe(
        Code.Unauthenticated,
      );
    }
  });
});

describe("Login side effects", () => {
  it("rehashes a password hashed with older parameters, transparently", async () => {
    const { email, password, userId } = await auth.signUp();
    const weaker = await argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: 19456,
      timeCost: 2,
      parallelism: 1,
    });
    await auth.server.db
      .updateTable("users")
      .set({ password_hash: weaker })
      .where("id", "=", userId)
      .execute();
    await auth.client.login({ email, password });
    const { password_hash } = await auth.server.db
      .selectFrom("users")
      .select("password_hash")
      .where("id", "=", userId)
      .executeTakeFirstOrThrow();
    expect(password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=3,p=1\$/);
    await expect(auth.client.login({ email, password })).resolves.toBeDefined();
  });

  it("publishes UserLoggedIn with the address and user agent, and LoginFailed without the email", async () => {
    const { email, password, userId } = await auth.signUp();
    const client = auth.anonymous({ "x-forwarded-for": "192.0.2.44", "user-agent": "zero-test/1.0" }).auth;
    const res = await client.login({ email, password });
    const sid = decodeJwt(res.accessToken)["sid"];
    const [loggedIn] = await waitForEvents(auth.nats.url, UserLoggedInSchema, (e) => e.sessionId === sid);
    expect(loggedIn!.event).toMatchObject({
      userId,
      sessionId: sid,
      ipAddress: "192.0.2.44",
      userAgent: "zero-test/1.0",
      twoFactor: false,
    });

    await rpcError(client.login({ email, password: "definitely not it" }));
    const [failed] = await waitForEvents(auth.nats.url, LoginFailedSchema, (e) => e.userId === userId);
    expect(failed!.event).toMatchObject({
      reason: LoginFailureReason.INVALID_CREDENTIALS,
      ipAddress: "192.0.2.44",
      userAgent: "zero-test/1.0",
    });
    const raw = Buffer.from(failed!.data).toString("latin1");
    expect(raw).not.toContain(email);
    expect(raw).not.toContain("definitely not it");
  });
});
