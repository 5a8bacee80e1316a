import { Code } from "@connectrpc/connect";
import { UserLoggedInSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { decodeJwt } from "jose";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { base32Decode, timeStep, totpCode } from "../src/two-factor/totp.js";
import { rpcError, startTestAuth, waitForEvents, type SignedIn, type TestAuth } from "./fixtures.js";

let auth: TestAuth;

beforeAll(async () => {
  auth = await startTestAuth();
});

afterAll(async () => {
  await auth?.close();
});

// Codes are accepted for the current 30-second step ±1, each step once. A test uses the steps
// around the one it starts in; it starts early in a step so that none of them goes out of range.
let base = 0;
beforeEach(async () => {
  const into = Date.now() % 30_000;
  if (into > 20_000) await sleep(30_000 - into + 200);
  base = timeStep(Date.now());
});

/** A signed-up account with TOTP on: its secret and recovery codes. Uses step base-1. */
async function withTotp(): Promise<SignedIn & { secret: Buffer; recoveryCodes: string[] }> {
  const user = await auth.signUp();
  const me = auth.as(user.accessToken).twoFactor;
  const { secret } = await me.startTotpEnrollment({ password: user.password });
  const key = base32Decode(secret);
  const { recoveryCodes } = await me.confirmTotpEnrollment({ code: totpCode(key, base - 1) });
  return { ...user, secret: key, recoveryCodes };
}

describe("enrolment", () => {
  it("needs the password, answers an otpauth URI, and turns on only after a correct code", async () => {
    const user = await auth.signUp({ email: `totp-${Date.now()}@example.com` });
    const me = auth.as(user.accessToken);
    const wrong = await rpcError(me.twoFactor.startTotpEnrollment({ password: "not my password at all" }));
    expect(wrong.code).toBe(Code.InvalidArgument);
    expect(wrong.rawMessage).toMatch(/password/);

    const started = await me.twoFactor.startTotpEnrollment({ password: user.password });
    expect(started.secret).toMatch(/^[A-Z2-7]{32}$/);
    const uri = new URL(started.otpauthUri);
    expect(uri.protocol).toBe("otpauth:");
    expect(decodeURIComponent(uri.pathname)).toBe(`/Zero:${user.email}`);
    expect(uri.searchParams.get("secret")).toBe(started.secret);
    expect(uri.searchParams.get("issuer")).toBe("Zero");
    expect((await me.auth.getMe({})).user?.twoFactorEnabled).toBe(false);

    const bad = await rpcError(me.twoFactor.confirmTotpEnrollment({ code: "000000" }));
    expect(bad.code).toBe(Code.InvalidArgument);
    const { recoveryCodes } = await me.twoFactor.confirmTotpEnrollment({
      code: totpCode(base32Decode(started.secret), base),
    });
    expect(recoveryCodes).toHaveLength(10);
    for (const code of recoveryCodes) expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    expect(new Set(recoveryCodes).size).toBe(10);
    expect((await me.auth.getMe({})).user?.twoFactorEnabled).toBe(true);

    // Stored sealed: neither the raw secret nor its base32 form is in the row; codes only hashed.
    const row = await auth.server.db
      .selectFrom("users")
      .select(["totp_secret_sealed"])
      .where("id", "=", user.userId)
      .executeTakeFirstOrThrow();
    expect(row.totp_secret_sealed?.includes(base32Decode(started.secret))).toBe(false);
    expect(row.totp_secret_sealed?.toString("latin1")).not.toContain(started.secret);
    const stored = await auth.server.db
      .selectFrom("recovery_codes")
      .select("code_hash")
      .where("user_id", "=", user.userId)
      .execute();
    expect(stored).toHaveLength(10);
    for (const { code_hash } of stored) {
      for (const code of recoveryCodes)
        expect(code_hash.toString("latin1")).not.toContain(code.replace("-", ""));
    }

    const again = await rpcError(me.twoFactor.startTotpEnrollment({ password: user.password }));
    expect(again.code).toBe(Code.FailedPrecondition);
  });
});

describe("sign-in with two-factor authentication", () => {
  it("answers a challenge instead of tokens, and CompleteLogin with a current code signs in", async () => {
    const user = await withTotp();
    const first = await auth.client.login({ email: user.email, password: user.password });
    expect(first).toMatchObject({
      mfaRequired: true,
      mfaExpiresIn: 300,
      accessToken: "",
      refreshToken: "",
      token: "",
    });
    expect(first.user).toBeUndefined();
    expect(first.mfaToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const done = await auth.client.completeLogin({
      mfaToken: first.mfaToken,
      code: totpCode(user.secret, base),
    });
    expect(done.user?.id).toBe(user.userId);
    expect(decodeJwt(done.accessToken)["amr"]).toEqual(["pwd", "otp"]);
    await expect(auth.client.refreshToken({ refreshToken: done.refreshToken })).resolves.toBeDefined();
    const [event] = await waitForEvents(
      auth.nats.url,
      UserLoggedInSchema,
      (e) => e.sessionId === decodeJwt(done.accessToken)["sid"],
    );
    expect(event!.event.twoFactor).toBe(true);
    // The challenge is single-use.
    const reused = await rpcError(
      auth.client.completeLogin({ mfaToken: first.mfaToken, code: totpCode(user.secret, base + 1) }),
    );
    expect(reused.code).toBe(Code.Unauthenticated);
  });

  it("accepts each code once: the same code on a new challenge is refused", async () => {
    const user = await withTotp();
    const code = totpCode(user.secret, base);
    const a = await auth.client.login({ email: user.email, password: user.password });
    await auth.client.completeLogin({ mfaToken: a.mfaToken, code });
    const b = await auth.client.login({ email: user.email, password: user.password });
    const replay = await rpcError(auth.client.completeLogin({ mfaToken: b.mfaToken, code }));
    expect(replay.code).toBe(Code.Unauthenticated);
    expect(replay.rawMessage).toMatch(/not valid \(or was already used\)/);
    // An earlier step than the last accepted one is refused too.
    const older = await rpcError(
      auth.client.completeLogin({ mfaToken: b.mfaToken, code: totpCode(user.secret, base - 1) }),
    );
    expect(older.code).toBe(Code.Unauthenticated);
    await expect(
      auth.client.completeLogin({ mfaToken: b.mfaToken, code: totpCode(user.secret, base + 1) }),
    ).resolves.toBeDefined();
  });

  it("accepts each recovery code once, typed in any case or spacing", async () => {
    const user = await withTotp();
    const [code] = user.recoveryCodes;
    const a = await auth.client.login({ email: user.email, password: user.password });
    await auth.client.completeLogin({
      mfaToken: a.mfaToken,
      recoveryCode: ` ${code!.toLowerCase().replace("-", " ")} `,
    });
    const b = await auth.client.login({ email: user.email, password: user.password });
    expect(
      (await rpcError(auth.client.completeLogin({ mfaToken: b.mfaToken, recoveryCode: code! }))).code,
    ).toBe(Code.Unauthenticated);
  });

  it("ends a challenge after five wrong codes, and unknown challenges get nothing", async () => {
    const user = await withTotp();
    const { mfaToken } = await auth.client.login({ email: user.email, password: user.password });
    for (let i = 0; i < 5; i++) {
      const error = await rpcError(auth.client.completeLogin({ mfaToken, code: String(100000 + i) }));
      expect([Code.Unauthenticated, Code.ResourceExhausted]).toContain(error.code);
    }
    const spent = await rpcError(auth.client.completeLogin({ mfaToken, code: totpCode(user.secret, base) }));
    expect(spent.code).toBe(Code.Unauthenticated);
    expect(spent.rawMessage).toMatch(/sign-in challenge is invalid/);
    for (const token of ["A".repeat(43), "nope"]) {
      expect(
        (await rpcError(auth.client.completeLogin({ mfaToken: token, code: "123456" }))).rawMessage,
      ).toMatch(/challenge is invalid/);
    }
    const neither = await rpcError(auth.client.completeLogin({ mfaToken, code: "", recoveryCode: "" }));
    expect(neither.code).toBe(Code.InvalidArgument);
  });
});

describe("turning it off and new recovery codes", () => {
  it("needs the password and a current code; afterwards sign-in needs the password only", async () => {
    const user = await withTotp();
    const me = auth.as(user.accessToken).twoFactor;
    expect(
      (await rpcError(me.disableTotp({ password: "wrong password here", code: totpCode(user.secret, base) })))
        .code,
    ).toBe(Code.InvalidArgument);
    expect((await rpcError(me.disableTotp({ password: user.password, code: "000000" }))).code).toBe(
      Code.InvalidArgument,
    );
    await me.disableTotp({ password: user.password, code: totpCode(user.secret, base) });
    const res = await auth.client.login({ email: user.email, password: user.password });
    expect(res.mfaRequired).toBe(false);
    expect(res.accessToken).not.toBe("");
    const recovery = await auth.server.db
      .selectFrom("recovery_codes")
      .select("id")
      .where("user_id", "=", user.userId)
      .execute();
    expect(recovery).toEqual([]);
    expect((await rpcError(me.disableTotp({ password: user.password, code: "123456" }))).code).toBe(
      Code.FailedPrecondition,
    );
  });

  it("replaces the recovery codes: the old ones stop working", async () => {
    const user = await withTotp();
    const me = auth.as(user.accessToken).twoFactor;
    const { recoveryCodes } = await me.regenerateRecoveryCodes({
      password: user.password,
      code: totpCode(user.secret, base),
    });
    expect(recoveryCodes).toHaveLength(10);
    const a = await auth.client.login({ email: user.email, password: user.password });
    expect(
      (
        await rpcError(
          auth.client.completeLogin({ mfaToken: a.mfaToken, recoveryCode: user.recoveryCodes[0]! }),
        )
      ).code,
    ).toBe(Code.Unauthenticated);
    await expect(
      auth.client.completeLogin({ mfaToken: a.mfaToken, recoveryCode: recoveryCodes[0]! }),
    ).resolves.toBeDefined();
  });
});
