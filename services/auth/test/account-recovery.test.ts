import { Code } from "@connectrpc/connect";
import {
  EmailVerifiedSchema,
  PasswordChangedSchema,
  PasswordChangeReason,
} from "@zero/proto/zero/auth/v1/events_pb";
import { sql } from "kysely";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startTestAuth, waitForEvents, waitForMail, type TestAuth } from "./fixtures.js";

// Email verification, password reset and password change, with the mails going through the
// notifications RPC (a stand-in that checks auth's service token).

let auth: TestAuth;

beforeAll(async () => {
  auth = await startTestAuth(
    { AUTH_PASSWORD_RESET_URL: "https://shop.example/reset" },
    { notifications: true },
  );
});

afterAll(async () => {
  await auth?.close();
});

const mailTo = (email: string, template: string) =>
  waitForMail(auth, (m) => m.to === email && m.template === template);

async function tableDump(): Promise<string> {
  const dumps: string[] = [];
  for (const table of ["users", "one_time_codes", "kit_outbox", "sessions", "refresh_tokens"]) {
    const { rows } = await sql<{ dump: string }>`select t::text as dump from ${sql.table(table)} t`.execute(
      auth.server.db,
    );
    dumps.push(...rows.map((r) => r.dump));
  }
  return dumps.join("\n");
}

describe("email verification", () => {
  it("mails a code at registration (through notifications, never stored or published) that verifies the address once", async () => {
    const user = await auth.signUp({ firstName: "Grace" });
    const mail = await mailTo(user.email, "email-verification");
    const code = mail.variables["verification_code"]!;
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(mail).toMatchObject({
      userId: user.userId,
      idempotencyKey: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
    });
    expect(mail.variables).toMatchObject({ first_name: "Grace", expires_in_minutes: "60" });
    const dump = await tableDump();
    expect(dump).not.toContain(code);
    expect(dump).toContain(createHash("sha256").update(code).digest("hex"));

    await auth.client.verifyEmail({ code });
    expect((await auth.as(user.accessToken).auth.getMe({})).user?.emailVerified).toBe(true);
    const [event] = await waitForEvents(auth.nats.url, EmailVerifiedSchema, (e) => e.userId === user.userId);
    expect(event!.event.email).toBe(user.email);
    expect(Buffer.from(event!.data).toString("latin1")).not.toContain(code);

    const again = await rpcError(auth.client.verifyEmail({ code }));
    expect(again.code).toBe(Code.InvalidArgument);
    expect(again.rawMessage).toMatch(/code: is invalid, expired or already used/);
    const resend = await rpcError(auth.as(user.accessToken).auth.sendVerificationEmail({}));
    expect(resend.code).toBe(Code.FailedPrecondition);
  });

  it("a new verification mail cancels the previous code; at most three an hour", async () => {
    const user = await auth.signUp();
    const first = (await mailTo(user.email, "email-verification")).variables["verification_code"]!;
    const me = auth.as(user.accessToken).auth;
    await me.sendVerificationEmail({});
    const second = await waitForMail(
      auth,
      (m) => m.to === user.email && m.variables["verification_code"] !== first,
    );
    expect((await rpcError(auth.client.verifyEmail({ code: first }))).code).toBe(Code.InvalidArgument);
    await me.sendVerificationEmail({});
    await me.sendVerificationEmail({});
    const limited = await rpcError(me.sendVerificationEmail({}));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.rawMessage).toMatch(/too many verification emails/);
    expect(second.variables["verification_code"]).toBeDefined();
  });

  it("refuses expired and made-up codes", async () => {
    const user = await auth.signUp();
    const code = (await mailTo(user.email, "email-verification")).variables["verification_code"]!;
    await auth.server.db
      .updateTable("one_time_codes")
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where("user_id", "=", user.userId)
      .execute();
    for (const attempt of [code, "A".repeat(43), "short", "x".repeat(10_000)]) {
      expect((await rpcError(auth.client.verifyEmail({ code: attempt }))).code).toBe(Code.InvalidArgument);
    }
    expect((await rpcError(auth.client.verifyEmail({ code: "" }))).code).toBe(Code.InvalidArgument);
  });
});

describe("password reset", () => {
  it("answers the same for an unknown address, and mails only a real account", async () => {
    const user = await auth.signUp();
    const before = auth.mails.length;
    const unknown = await auth.client.requestPasswordReset({ email: `nobody-${Date.now()}@example.com` });
    const known = await auth.client.requestPasswordReset({ email: user.email.toUpperCase() });
    expect(unknown).toEqual(known);
    const mail = await mailTo(user.email, "password-reset");
    expect(mail.variables["reset_url"]).toBe(
      `https://shop.example/reset?code=${mail.variables["reset_code"]}`,
    );
    expect(mail.variables["expires_in_minutes"]).toBe("30");
    await sleep(200);
    expect(auth.mails.slice(before).filter((m) => m.template === "password-reset")).toHaveLength(1);
  });

  it("sets the new password, ends every session, publishes PasswordChanged, and the code works once", async () => {
    const user = await auth.signUp();
    const other = await auth.client.login({ email: user.email, password: user.password });
    await auth.client.requestPasswordReset({ email: user.email });
    const code = (await mailTo(user.email, "password-reset")).variables["reset_code"]!;

    const weak = await rpcError(auth.client.resetPassword({ code, newPassword: "password1234" }));
    expect(weak.code).toBe(Code.InvalidArgument);
    expect(weak.rawMessage).toMatch(/new_password/);
    // Refused for the password, so the code is still good.
    await auth.client.resetPassword({ code, newPassword: "a brand new passphrase" });

    expect((await rpcError(auth.client.login({ email: user.email, password: user.password }))).code).toBe(
      Code.Unauthenticated,
    );
    await expect(
      auth.client.login({ email: user.email, password: "a brand new passphrase" }),
    ).resolves.toBeDefined();
    for (const token of [user.accessToken, other.accessToken]) {
      expect((await rpcError(auth.as(token).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    }
    expect((await rpcError(auth.client.refreshToken({ refreshToken: other.refreshToken }))).code).toBe(
      Code.Unauthenticated,
    );
    const [event] = await waitForEvents(
      auth.nats.url,
      PasswordChangedSchema,
      (e) => e.userId === user.userId,
    );
    expect(event!.event.reason).toBe(PasswordChangeReason.RESET);

    const reused = await rpcError(auth.client.resetPassword({ code, newPassword: "yet another passphrase" }));
    expect(reused.rawMessage).toMatch(/code: is invalid, expired or already used/);
    expect(await tableDump()).not.toContain(code);
  });

  it("unlocks an account a stranger locked with wrong guesses", async () => {
    const user = await auth.signUp();
    for (let i = 0; i < 7; i++)
      await rpcError(auth.client.login({ email: user.email, password: `stranger guess ${i}` }));
    expect((await rpcError(auth.client.login({ email: user.email, password: user.password }))).code).toBe(
      Code.ResourceExhausted,
    );
    await auth.client.requestPasswordReset({ email: user.email });
    const code = (await mailTo(user.email, "password-reset")).variables["reset_code"]!;
    await auth.client.resetPassword({ code, newPassword: "my fresh passphrase" });
    await expect(
      auth.client.login({ email: user.email, password: "my fresh passphrase" }),
    ).resolves.toBeDefined();
  });

  it("limits reset mails per address without telling anything", async () => {
    const user = await auth.signUp();
    for (let i = 0; i < 6; i++) await auth.client.requestPasswordReset({ email: user.email });
    await sleep(300);
    expect(auth.mails.filter((m) => m.to === user.email && m.template === "password-reset")).toHaveLength(3);
    expect((await rpcError(auth.client.requestPasswordReset({ email: "not-an-email" }))).code).toBe(
      Code.InvalidArgument,
    );
  });
});

describe("ChangePassword", () => {
  it("needs the current password, refuses a weak new one, and ends the other sessions only", async () => {
    const user = await auth.signUp();
    const other = await auth.client.login({ email: user.email, password: user.password });
    const me = auth.as(user.accessToken).auth;

    const wrong = await rpcError(
      me.changePassword({ currentPassword: "not the current one", newPassword: "a solid new passphrase" }),
    );
    expect(wrong.code).toBe(Code.InvalidArgument);
    expect(wrong.rawMessage).toMatch(/current_password/);
    const weak = await rpcError(
      me.changePassword({ currentPassword: user.password, newPassword: "qwertyuiop12" }),
    );
    expect(weak.rawMessage).toMatch(/new_password/);

    const res = await me.changePassword({
      currentPassword: user.password,
      newPassword: "a solid new passphrase",
    });
    expect(res.revokedSessions).toBe(1);
    await expect(me.getMe({})).resolves.toBeDefined();
    expect((await rpcError(auth.as(other.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    await expect(
      auth.client.login({ email: user.email, password: "a solid new passphrase" }),
    ).resolves.toBeDefined();
    const [event] = await waitForEvents(
      auth.nats.url,
      PasswordChangedSchema,
      (e) => e.userId === user.userId,
    );
    expect(event!.event.reason).toBe(PasswordChangeReason.CHANGED);
  });
});
