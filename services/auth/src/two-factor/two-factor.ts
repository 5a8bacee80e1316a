import { DomainError } from "@zero/kit/errors";
import { sql, type Kysely } from "kysely";
import { createHmac, randomBytes, randomInt } from "node:crypto";
import { uuidv7 } from "uuidv7";
import type { DB, UserRow } from "../db/schema.js";
import { openSecret, sealSecret } from "../tokens/sealed-secret.js";
import { base32Encode, matchingStep, otpauthUri, TOTP_SECRET_BYTES } from "./totp.js";

// TOTP enrolment and verification for one account. The secret is sealed (AES-256-GCM under a key
// derived from AUTH_KEY_ENCRYPTION_KEY, bound to the user id); each accepted code records its time
// step and only later steps are accepted afterwards, so a code works once even within its window
// (RFC 6238 §5.2). Recovery codes are ~50 random bits each, stored as HMAC-SHA256 under another
// derived key: a database copy alone can neither use nor brute-force them.

export const RECOVERY_CODE_COUNT = 10;
// Crockford's base32 alphabet: no I, L, O, U to misread.
const RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export interface TwoFactor {
  /** Stores a new pending secret (replacing an unconfirmed one) and answers it for the authenticator. */
  startEnrollment(user: UserRow): Promise<{ secret: string; otpauthUri: string }>;
  /** Enables TOTP with a code of the pending secret; answers the recovery codes (shown once). */
  confirmEnrollment(user: UserRow, code: string): Promise<string[]>;
  /**
   * True when `code` is a current TOTP code not used before, or an unused recovery code (which is
   * then spent). Pass the transaction that acts on the answer, so a failure rolls it back.
   */
  verify(trx: Kysely<DB>, user: UserRow, code: string): Promise<boolean>;
  disable(trx: Kysely<DB>, userId: string): Promise<void>;
  regenerateRecoveryCodes(trx: Kysely<DB>, userId: string): Promise<string[]>;
}

export function createTwoFactor(deps: {
  db: Kysely<DB>;
  /** deriveKey(kek, "totp-secrets") */
  secretKey: Buffer;
  /** deriveKey(kek, "recovery-codes") */
  recoveryKey: Buffer;
  issuer: string;
  now?: () => number;
}): TwoFactor {
  const { db } = deps;
  const now = deps.now ?? Date.now;
  const context = (userId: string) => `totp:${userId}`;
  const open = (sealed: Buffer, userId: string) =>
    openSecret(sealed, deps.secretKey, context(userId), `TOTP secret of ${userId}`);
  const hashRecovery = (code: string) =>
    createHmac("sha256", deps.recoveryKey).update(normaliseRecoveryCode(code)).digest();

  const replaceRecoveryCodes = async (trx: Kysely<DB>, userId: string) => {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await trx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
    await trx
      .insertInto("recovery_codes")
      .values(codes.map((code) => ({ id: uuidv7(), user_id: userId, code_hash: hashRecovery(code) })))
      .execute();
    return codes;
  };

  // Atomic: of two requests with the same code, one moves the step forward and the other finds it moved.
  const acceptStep = async (trx: Kysely<DB>, userId: string, step: number) => {
    const result = await trx
      .updateTable("users")
      .set({ totp_last_step: step })
      .where("id", "=", userId)
      .where((eb) =>
        eb.or([eb("totp_last_step", "is", null), eb("totp_last_step", "<", sql<string>`${step}`)]),
      )
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  };

  return {
    async startEnrollment(user) {
      if (user.totp_enabled_at !== null) {
        throw new DomainError(
          "failed_precondition",
          "two-factor authentication is already on: disable it first to enrol another authenticator",
        );
      }
      const secret = randomBytes(TOTP_SECRET_BYTES);
      await db
        .updateTable("users")
        .set({ totp_pending_secret_sealed: sealSecret(secret, deps.secretKey, context(user.id)) })
        .where("id", "=", user.id)
        .execute();
      return {
        secret: base32Encode(secret),
        otpauthUri: otpauthUri({ secret, account: user.email, issuer: deps.issuer }),
      };
    },

    async confirmEnrollment(user, code) {
      if (user.totp_enabled_at !== null) {
        throw new DomainError("failed_precondition", "two-factor authentication is already on");
      }
      if (user.totp_pending_secret_sealed === null) {
        throw new DomainError(
          "failed_precondition",
          "no enrolment in progress: call StartTotpEnrollment first",
        );
      }
      const secret = open(user.totp_pending_secret_sealed, user.id);
      const step = matchingStep(secret, code.trim(), now());
      if (step === undefined) {
        throw new DomainError(
          "invalid_argument",
          "code: does not match the authenticator: check the phone's clock and enter the current code",
          { fieldViolations: [{ field: "code", description: "does not match the authenticator" }] },
        );
      }
      return db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable("users")
          .set({
            totp_secret_sealed: user.totp_pending_secret_sealed,
            totp_pending_secret_sealed: null,
            totp_enabled_at: new Date(),
            totp_last_step: step,
          })
          .where("id", "=", user.id)
          .where("totp_enabled_at", "is", null)
          .executeTakeFirst();
        if (updated.numUpdatedRows !== 1n) {
          throw new DomainError("failed_precondition", "two-factor authentication is already on");
        }
        return replaceRecoveryCodes(trx, user.id);
      });
    },

    async verify(trx, user, code) {
      if (user.totp_secret_sealed === null) return false;
      const given = code.trim();
      if (/^\d{6}$/.test(given)) {
        const step = matchingStep(open(user.totp_secret_sealed, user.id), given, now());
        return step !== undefined && (await acceptStep(trx, user.id, step));
      }
      if (normaliseRecoveryCode(given).length !== 10) return false;
      const spent = await trx
        .updateTable("recovery_codes")
        .set({ used_at: new Date() })
        .where("user_id", "=", user.id)
        .where("code_hash", "=", hashRecovery(given))
        .where("used_at", "is", null)
        .executeTakeFirst();
      return spent.numUpdatedRows === 1n;
    },

    async disable(trx, userId) {
      await trx
        .updateTable("users")
        .set({
          totp_secret_sealed: null,
          totp_pending_secret_sealed: null,
          totp_enabled_at: null,
          totp_last_step: null,
        })
        .where("id", "=", userId)
        .execute();
      await trx.deleteFrom("recovery_codes").where("user_id", "=", userId).execute();
    },

    regenerateRecoveryCodes: (trx, userId) => replaceRecoveryCodes(trx, userId),
  };
}

/** `XXXXX-XXXXX`; case, spaces and dashes do not matter when it is typed back. */
function newRecoveryCode(): string {
  let code = "";
  for (let i = 0; i < 10; i++) code += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

function normaliseRecoveryCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, "");
}
