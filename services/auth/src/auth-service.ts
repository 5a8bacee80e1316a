import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArgument, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { JwkSchema, type AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import {
  EmailVerifiedSchema,
  LoginFailedSchema,
  LoginFailureReason,
  PasswordChangedSchema,
  PasswordChangeReason,
  UserLoggedInSchema,
  UserRegisteredSchema,
} from "@zero/proto/zero/auth/v1/events_pb";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import { eraseAccount } from "./accounts/account-deletion.js";
import { consumeCode, issueCode } from "./accounts/one-time-codes.js";
import { DEFAULT_ROLES } from "./accounts/roles.js";
import {
  findUserByEmail,
  findUserById,
  insertUser,
  isDuplicateEmail,
  lockUserById,
  updateUser,
} from "./accounts/user-store.js";
import { toUser } from "./accounts/user-view.js";
import { callerOf } from "./caller.js";
import { clientContext, type ClientContext } from "./client-context.js";
import {
  emailCharactersProblem,
  emailProblem,
  nameProblem,
  newPasswordProblem,
  normaliseEmail,
  type PasswordHasher,
} from "./credentials/credentials.js";
import type { LoginThrottle } from "./credentials/login-throttle.js";
import { countedAddress, throttled } from "./credentials/login-throttle.js";
import type { Throttle } from "./credentials/throttle.js";
import type { DB, UserRow } from "./db/schema.js";
import { recordEvent } from "./events.js";
import type { Mailer } from "./mail-sender.js";
import type { Sessions, SessionTokens } from "./tokens/sessions.js";
import type { SigningKeyStore } from "./tokens/signing-keys.js";
import {
  attemptChallenge,
  CHALLENGE_TTL_SECONDS,
  createChallenge,
  deleteChallenge,
} from "./two-factor/login-challenges.js";
import type { TwoFactor } from "./two-factor/two-factor.js";

// The same words for an unknown email and a wrong password: the answer must not reveal which.
export const INVALID_CREDENTIALS = "invalid email or password";
// Clients and the gateway may reuse the key set this long; a new key is published for longer than
// that before it signs (signing-keys.ts), so a cached set never misses a live token's key.
export const JWKS_CACHE_CONTROL = "public, max-age=300";

export interface AuthServiceDeps {
  db: Kysely<DB>;
  hasher: PasswordHasher;
  sessions: Sessions;
  signingKeys: SigningKeyStore;
  twoFactor: TwoFactor;
  loginThrottle: LoginThrottle;
  /** Limits verification and reset mails per account/address (each request counts). */
  mailThrottle: Throttle;
  mailer: Mailer;
  /** Nudges the outbox relay after a commit so events leave now rather than at the next poll. */
  relay: { wake(): void };
  logger: Logger;
  emailVerificationTtlSeconds: number;
  passwordResetTtlSeconds: number;
  emailVerificationUrl: string | undefined;
  passwordResetUrl: string | undefined;
}

/** zero.auth.v1.AuthService: validate → one transaction → map. */
export function createAuthService(deps: AuthServiceDeps): ServiceImpl<typeof AuthService> {
  const { db, hasher, sessions, loginThrottle } = deps;

  const tokensResponse = (tokens: SessionTokens) => ({
    accessToken: tokens.accessToken,
    tokenType: "Bearer",
    expiresIn: tokens.expiresIn,
    refreshToken: tokens.refreshToken,
    refreshExpiresIn: tokens.refreshExpiresIn,
    token: tokens.accessToken,
  });

  /** A failed credential check: counted by the throttle, published, answered like any other. */
  const loginFailed = async (
    email: string,
    client: ClientContext,
    user: UserRow | undefined,
    reason: LoginFailureReason,
  ) => {
    await loginThrottle.failed(email, client.ip);
    await db.transaction().execute((trx) =>
      recordEvent(trx, LoginFailedSchema, {
        userId: user?.id ?? "",
        reason,
        ipAddress: client.ip ?? "",
        userAgent: client.userAgent ?? "",
        attemptTime: timestampFromDate(new Date()),
      }),
    );
    deps.relay.wake();
  };

  const signIn = async (user: UserRow, client: ClientContext, twoFactor: boolean) => {
    const now = new Date();
    const tokens = await db.transaction().execute(async (trx) => {
      const opened = await sessions.open(trx, { user, client, twoFactor });
      await updateUser(trx, user.id, { last_login_at: now });
      await recordEvent(trx, UserLoggedInSchema, {
        userId: user.id,
        sessionId: opened.sessionId,
        ipAddress: client.ip ?? "",
        userAgent: client.userAgent ?? "",
        twoFactor,
        loginTime: timestampFromDate(now),
      });
      return opened;
    });
    deps.relay.wake();
    await loginThrottle.succeeded(user.email);
    return { ...tokensResponse(tokens), user: toUser({ ...user, last_login_at: now }) };
  };

  /** The signed-in caller's account; its absence means it was deleted a moment ago. */
  const callerAccount = async (ctx: HandlerContext) => {
    const caller = callerOf(ctx);
    const user = await findUserById(db, caller.userId);
    if (!user)
      throw new DomainError("unauthenticated", "this account no longer exists", { reason: "ACCOUNT_GONE" });
    return { caller, user };
  };

  /** Re-authentication inside a signed-in session: throttled like a sign-in. */
  const confirmPassword = async (user: UserRow, password: string, client: ClientContext, field: string) => {
    await loginThrottle.check(user.email, client.ip);
    if (password === "" || !(await hasher.verify(user.password_hash, password))) {
      await loginThrottle.failed(user.email, client.ip);
      throw invalidArgument(field, "is not the account's current password");
    }
  };

  const postMail = (
    template: "email-verification" | "password-reset",
    user: UserRow,
    code: { id: string; code: string },
    ttlSeconds: number,
    baseUrl: string | undefined,
  ) => {
    const codeName = template === "email-verification" ? "verification_code" : "reset_code";
    const urlName = template === "email-verification" ? "verification_url" : "reset_url";
    const variables: Record<string, string> = {
      [codeName]: code.code,
      first_name: user.first_name,
      expires_in_minutes: String(Math.round(ttlSeconds / 60)),
    };
    if (baseUrl !== undefined) {
      const url = new URL(baseUrl);
      url.searchParams.set("code", code.code);
      variables[urlName] = url.toString();
    }
    deps.mailer.post({ template, to: user.email, userId: user.id, idempotencyKey: code.id, variables });
  };

  /** Each request counts: a few mails an hour per key, then an increasing wait. */
  const limitMail = async (key: string) => {
    const waitMs = await deps.mailThrottle.retryAfterMs(key);
    if (waitMs > 0) return waitMs;
    // The request that goes over the allowance is the first one refused.
    return (await deps.mailThrottle.fail(key)).lockMs;
  };

  return {
    async register(req) {
      const email = normaliseEmail(req.email);
      const firstName = req.firstName.trim();
      const lastName = req.lastName.trim();
      const violations = [
        violation("email", emailProblem(email)),
        violation("password", newPasswordProblem(req.password, { email })),
        violation("first_name", nameProblem(firstName)),
        violation("last_name", nameProblem(lastName)),
      ].filter((v) => v !== undefined);
      if (violations.length > 0) throw invalidArguments(violations);

      // Hash before the transaction: ~40 ms of argon2 must not hold a pooled connection.
      const passwordHash = await hasher.hash(req.password);
      let created: { user: UserRow; code: { id: string; code: string } };
      try {
        created = await db.transaction().execute(async (trx) => {
          const user = await insertUser(trx, {
            id: uuidv7(),
            email,
            password_hash: passwordHash,
            first_name: firstName,
            last_name: lastName,
            // Only ever the default: no request field can grant a role (mass assignment).
            roles: [...DEFAULT_ROLES],
          });
          await recordEvent(trx, UserRegisteredSchema, {
            userId: user.id,
            email: user.email,
            firstName: user.first_name,
            lastName: user.last_name,
            registerTime: timestampFromDate(user.created_at),
          });
          const code = await issueCode(trx, {
            userId: user.id,
            email: user.email,
            purpose: "verify_email",
            ttlSeconds: deps.emailVerificationTtlSeconds,
          });
          return { user, code };
        });
      } catch (error) {
        // The unique index decides, so two racing registrations cannot both win.
        if (isDuplicateEmail(error)) {
          throw new DomainError(
            "already_exists",
            "an account with this email already exists: sign in instead",
            {
              fieldViolations: [{ field: "email", description: "is already registered" }],
            },
          );
        }
        throw error;
      }
      deps.relay.wake();
      postMail(
        "email-verification",
        created.user,
        created.code,
        deps.emailVerificationTtlSeconds,
        deps.emailVerificationUrl,
      );
      return { user: toUser(created.user) };
    },

    async login(req, ctx) {
      const email = normaliseEmail(req.email);
      const violations = [
        violation("email", email === "" ? "is required" : emailCharactersProblem(email)),
        violation("password", req.password === "" ? "is required" : undefined),
      ].filter((v) => v !== undefined);
      if (violations.length > 0) throw invalidArguments(violations);

      const client = clientContext(ctx);
      await loginThrottle.check(email, client.ip);
      const user = await findUserByEmail(db, email);
      if (!user) {
        // The same argon2 work as a wrong password, so timing does not tell either.
        await hasher.verifyNothing(req.password);
        await loginFailed(email, client, undefined, LoginFailureReason.INVALID_CREDENTIALS);
        throw new DomainError("unauthenticated", INVALID_CREDENTIALS);
      }
      if (!(await hasher.verify(user.password_hash, req.password))) {
        await loginFailed(email, client, user, LoginFailureReason.INVALID_CREDENTIALS);
        throw new DomainError("unauthenticated", INVALID_CREDENTIALS);
      }
      if (user.status !== "active") {
        // Said only to whoever knows the password.
        await loginFailed(email, client, user, LoginFailureReason.ACCOUNT_DEACTIVATED);
        throw new DomainError("permission_denied", "this account is deactivated: contact support", {
          reason: "ACCOUNT_DEACTIVATED",
        });
      }
      if (hasher.needsRehash(user.password_hash)) {
        // Transparent upgrade to the configured argon2 parameters; a failure only postpones it.
        try {
          const upgraded = await hasher.hash(req.password);
          await updateUser(db, user.id, { password_hash: upgraded });
        } catch (error) {
          deps.logger.warn({ err: error, user_id: user.id }, "password rehash failed");
        }
      }
      if (user.totp_enabled_at !== null) {
        const mfaToken = await createChallenge(db, user.id, client);
        return { mfaRequired: true, mfaToken, mfaExpiresIn: CHALLENGE_TTL_SECONDS, tokenType: "" };
      }
      return signIn(user, client, false);
    },

    async completeLogin(req, ctx) {
      const code = req.code.trim();
      const recovery = req.recoveryCode.trim();
      const violations: FieldViolation[] = [];
      if (req.mfaToken === "") violations.push({ field: "mfa_token", description: "is required" });
      if ((code === "") === (recovery === "")) {
        violations.push({ field: "code", description: "give either a TOTP code or a recovery code" });
      }
      if (violations.length > 0) throw invalidArguments(violations);

      const client = clientContext(ctx);
      const challenge = await attemptChallenge(db, req.mfaToken);
      const user = challenge && (await findUserById(db, challenge.userId));
      if (!challenge || !user || user.status !== "active") {
        throw new DomainError(
          "unauthenticated",
          "the sign-in challenge is invalid, used up or expired: sign in again with the password",
          { reason: "MFA_CHALLENGE_INVALID" },
        );
      }
      await loginThrottle.check(user.email, client.ip);
      const accepted = await db
        .transaction()
        .execute((trx) => deps.twoFactor.verify(trx, user, code || recovery));
      if (!accepted) {
        await loginFailed(user.email, client, user, LoginFailureReason.INVALID_SECOND_FACTOR);
        throw new DomainError(
          "unauthenticated",
          "the code is not valid (or was already used): try the next one",
          {
            reason: "MFA_CODE_INVALID",
          },
        );
      }
      await deleteChallenge(db, challenge.id);
      return signIn(user, client, true);
    },

    async refreshToken(req, ctx) {
      if (req.refreshToken === "") throw invalidArgument("refresh_token", "is required");
      const tokens = await sessions.refresh(req.refreshToken, clientContext(ctx));
      return tokensResponse(tokens);
    },

    async logout(_req, ctx) {
      const caller = callerOf(ctx);
      if (caller.sessionId === undefined) return {};
      const sessionId = caller.sessionId;
      const ended = await db
        .transaction()
        .execute((trx) =>
          sessions.revokeIn(trx, { userId: caller.userId, sessionIds: [sessionId] }, "logout"),
        );
      await sessions.announce({ sessionIds: ended });
      return {};
    },

    async logoutEverywhere(_req, ctx) {
      const caller = callerOf(ctx);
      const now = new Date();
      const ended = await db.transaction().execute(async (trx) => {
        await updateUser(trx, caller.userId, { tokens_valid_after: now });
        return sessions.revokeIn(trx, { userId: caller.userId }, "logout_everywhere");
      });
      await sessions.announce({ sessionIds: ended, userId: caller.userId, tokensIssuedBefore: now });
      return { revokedSessions: ended.length };
    },

    async getMe(_req, ctx) {
      const { user } = await callerAccount(ctx);
      return { user: toUser(user) };
    },

    async validateToken(_req, ctx) {
      const { caller, user } = await callerAccount(ctx);
      return {
        valid: true,
        userId: user.id,
        roles: caller.roles,
        expireTime: timestampFromDate(new Date(caller.expiresAt * 1000)),
        sessionId: caller.sessionId ?? "",
        user: toUser(user),
      };
    },

    async changePassword(req, ctx) {
      const { caller, user } = await callerAccount(ctx);
      const client = clientContext(ctx);
      const problem = newPasswordProblem(req.newPassword, { email: user.email });
      if (problem !== undefined) throw invalidArgument("new_password", problem);
      await confirmPassword(user, req.currentPassword, client, "current_password");
      const passwordHash = await hasher.hash(req.newPassword);
      const now = new Date();
      const ended = await db.transaction().execute(async (trx) => {
        await updateUser(trx, user.id, { password_hash: passwordHash, password_changed_at: now });
        const others = await sessions.revokeIn(
          trx,
          {
            userId: user.id,
            ...(caller.sessionId === undefined ? {} : { exceptSessionId: caller.sessionId }),
          },
          "password_changed",
        );
        await recordEvent(trx, PasswordChangedSchema, {
          userId: user.id,
          reason: PasswordChangeReason.CHANGED,
          changeTime: timestampFromDate(now),
        });
        return others;
      });
      deps.relay.wake();
      await sessions.announce({ sessionIds: ended });
      await loginThrottle.succeeded(user.email);
      return { revokedSessions: ended.length };
    },

    async sendVerificationEmail(_req, ctx) {
      const { user } = await callerAccount(ctx);
      if (user.email_verified_at !== null) {
        throw new DomainError("failed_precondition", "the email address is already verified");
      }
      const waitMs = await limitMail(`verify:${user.id}`);
      if (waitMs > 0) throw throttled(waitMs, "verification emails");
      const code = await db.transaction().execute((trx) =>
        issueCode(trx, {
          userId: user.id,
          email: user.email,
          purpose: "verify_email",
          ttlSeconds: deps.emailVerificationTtlSeconds,
        }),
      );
      postMail("email-verification", user, code, deps.emailVerificationTtlSeconds, deps.emailVerificationUrl);
      return {};
    },

    async verifyEmail(req) {
      if (req.code.trim() === "") throw invalidArgument("code", "is required");
      const verified = await db.transaction().execute(async (trx) => {
        const consumed = await consumeCode(trx, { code: req.code, purpose: "verify_email" });
        const user = consumed && (await lockUserById(trx, consumed.userId));
        // A code proves the address it was sent to, not one the account has since moved to.
        if (!consumed || !user || user.email !== consumed.email) return false;
        if (user.email_verified_at === null) {
          const now = new Date();
          await updateUser(trx, user.id, { email_verified_at: now });
          await recordEvent(trx, EmailVerifiedSchema, {
            userId: user.id,
            email: user.email,
            verifyTime: timestampFromDate(now),
          });
        }
        return true;
      });
      if (!verified) {
        throw invalidArgument(
          "code",
          "is invalid, expired or already used: ask for a new verification email",
        );
      }
      deps.relay.wake();
      return {};
    },

    async requestPasswordReset(req, ctx) {
      const email = normaliseEmail(req.email);
      const problem = emailProblem(email);
      if (problem !== undefined) throw invalidArgument("email", problem);
      const client = clientContext(ctx);
      // Throttled per address typed and per client; a throttled request gets the same answer as
      // any other (nothing sent), so neither the limit nor the answer tells who has an account.
      const address = countedAddress(client.ip);
      const waits = await Promise.all([
        limitMail(`reset:${email}`),
        address === null ? 0 : limitMail(`reset-ip:${address}`),
      ]);
      if (waits.some((w) => w > 0)) return {};
      const user = await findUserByEmail(db, email);
      if (user?.status === "active") {
        const code = await db.transaction().execute((trx) =>
          issueCode(trx, {
            userId: user.id,
            email: user.email,
            purpose: "reset_password",
            ttlSeconds: deps.passwordResetTtlSeconds,
          }),
        );
        postMail("password-reset", user, code, deps.passwordResetTtlSeconds, deps.passwordResetUrl);
      }
      return {};
    },

    async resetPassword(req) {
      const violations = [
        violation("code", req.code.trim() === "" ? "is required" : undefined),
        violation("new_password", newPasswordProblem(req.newPassword)),
      ].filter((v) => v !== undefined);
      if (violations.length > 0) throw invalidArguments(violations);
      const passwordHash = await hasher.hash(req.newPassword);
      const now = new Date();
      const outcome = await db.transaction().execute(async (trx) => {
        const consumed = await consumeCode(trx, { code: req.code, purpose: "reset_password" });
        const user = consumed && (await lockUserById(trx, consumed.userId));
        if (!consumed || !user || user.email !== consumed.email) return { kind: "invalid" as const };
        const problem = newPasswordProblem(req.newPassword, { email: user.email });
        // Rolled back with the transaction: the code stays usable for a better password.
        if (problem !== undefined) throw invalidArgument("new_password", problem);
        await updateUser(trx, user.id, {
          password_hash: passwordHash,
          password_changed_at: now,
          tokens_valid_after: now,
        });
        const ended = await sessions.revokeIn(trx, { userId: user.id }, "password_reset");
        await recordEvent(trx, PasswordChangedSchema, {
          userId: user.id,
          reason: PasswordChangeReason.RESET,
          changeTime: timestampFromDate(now),
        });
        return { kind: "reset" as const, user, ended };
      });
      if (outcome.kind === "invalid") {
        throw invalidArgument("code", "is invalid, expired or already used: request a new password reset");
      }
      deps.relay.wake();
      await sessions.announce({
        sessionIds: outcome.ended,
        userId: outcome.user.id,
        tokensIssuedBefore: now,
      });
      // Whoever was locked out by a stranger's guesses is let back in by proving the mailbox.
      await loginThrottle.succeeded(outcome.user.email);
      return {};
    },

    async deleteAccount(req, ctx) {
      const { user } = await callerAccount(ctx);
      const client = clientContext(ctx);
      await confirmPassword(user, req.password, client, "password");
      const now = new Date();
      const ended = await db.transaction().execute(async (trx) => {
        if (user.totp_enabled_at !== null && !(await deps.twoFactor.verify(trx, user, req.code))) {
          return undefined;
        }
        return eraseAccount(trx, user.id, now);
      });
      if (ended === undefined) {
        await loginThrottle.failed(user.email, client.ip);
        throw invalidArgument(
          "code",
          "a current TOTP code or a recovery code is needed (two-factor authentication is on)",
        );
      }
      deps.relay.wake();
      await sessions.announce({ sessionIds: ended, userId: user.id, tokensIssuedBefore: now });
      return {};
    },

    async getJwks(_req, ctx) {
      const keys = await deps.signingKeys.publicJwks();
      ctx.responseHeader.set("Cache-Control", JWKS_CACHE_CONTROL);
      return {
        keys: keys.map((k) =>
          create(JwkSchema, {
            kty: k.kty,
            crv: k.crv ?? "",
            x: k.x ?? "",
            kid: k.kid ?? "",
            alg: k.alg ?? "",
            use: k.use ?? "",
          }),
        ),
      };
    },
  };
}

function violation(field: string, description: string | undefined): FieldViolation | undefined {
  return description === undefined ? undefined : { field, description };
}
