import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArgument } from "@zero/kit/errors";
import type { TwoFactorService } from "@zero/proto/zero/auth/v1/two_factor_pb";
import type { Kysely } from "kysely";
import { findUserById } from "./accounts/user-store.js";
import { callerOf } from "./caller.js";
import { clientContext } from "./client-context.js";
import type { PasswordHasher } from "./credentials/credentials.js";
import type { LoginThrottle } from "./credentials/login-throttle.js";
import type { DB, UserRow } from "./db/schema.js";
import type { TwoFactor } from "./two-factor/two-factor.js";

/**
 * zero.auth.v1.TwoFactorService. Every change needs the password (and, once TOTP is on, a code):
 * a stolen access token alone can neither switch 2FA off nor enrol an attacker's authenticator.
 * Wrong passwords and codes count towards the account's login throttle.
 */
export function createTwoFactorService(deps: {
  db: Kysely<DB>;
  hasher: PasswordHasher;
  twoFactor: TwoFactor;
  loginThrottle: LoginThrottle;
}): ServiceImpl<typeof TwoFactorService> {
  const { db, twoFactor, loginThrottle } = deps;

  const account = async (ctx: HandlerContext): Promise<UserRow> => {
    const user = await findUserById(db, callerOf(ctx).userId);
    if (!user)
      throw new DomainError("unauthenticated", "this account no longer exists", { reason: "ACCOUNT_GONE" });
    await loginThrottle.check(user.email, clientContext(ctx).ip);
    return user;
  };

  const failed = async (user: UserRow, ctx: HandlerContext, field: string, description: string) => {
    await loginThrottle.failed(user.email, clientContext(ctx).ip);
    return invalidArgument(field, description);
  };

  const confirmPassword = async (user: UserRow, password: string, ctx: HandlerContext) => {
    if (password === "" || !(await deps.hasher.verify(user.password_hash, password))) {
      throw await failed(user, ctx, "password", "is not the account's current password");
    }
  };

  const requireEnabled = (user: UserRow) => {
    if (user.totp_enabled_at === null) {
      throw new DomainError("failed_precondition", "two-factor authentication is not on for this account");
    }
  };

  /** Runs `change` only when `code` is accepted, in one transaction. */
  const withCode = async <T>(
    user: UserRow,
    code: string,
    ctx: HandlerContext,
    change: (trx: Kysely<DB>) => Promise<T>,
  ) => {
    const result = await db.transaction().execute(async (trx) => {
      if (!(await twoFactor.verify(trx, user, code))) return { accepted: false as const };
      return { accepted: true as const, value: await change(trx) };
    });
    if (!result.accepted)
      throw await failed(
        user,
        ctx,
        "code",
        "is not a current code of the authenticator (or was already used)",
      );
    return result.value;
  };

  return {
    async startTotpEnrollment(req, ctx) {
      const user = await account(ctx);
      await confirmPassword(user, req.password, ctx);
      return twoFactor.startEnrollment(user);
    },

    async confirmTotpEnrollment(req, ctx) {
      const user = await account(ctx);
      if (req.code.trim() === "") throw invalidArgument("code", "is required");
      try {
        return { recoveryCodes: await twoFactor.confirmEnrollment(user, req.code) };
      } catch (error) {
        if (error instanceof DomainError && error.code === "invalid_argument") {
          await loginThrottle.failed(user.email, clientContext(ctx).ip);
        }
        throw error;
      }
    },

    async disableTotp(req, ctx) {
      const user = await account(ctx);
      requireEnabled(user);
      await confirmPassword(user, req.password, ctx);
      await withCode(user, req.code, ctx, (trx) => twoFactor.disable(trx, user.id));
      return {};
    },

    async regenerateRecoveryCodes(req, ctx) {
      const user = await account(ctx);
      requireEnabled(user);
      await confirmPassword(user, req.password, ctx);
      const recoveryCodes = await withCode(user, req.code, ctx, (trx) =>
        twoFactor.regenerateRecoveryCodes(trx, user.id),
      );
      return { recoveryCodes };
    },
  };
}
