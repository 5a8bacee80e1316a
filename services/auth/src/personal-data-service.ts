import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "@zero/kit/errors";
import type { JsonObject } from "@bufbuild/protobuf";
import type { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import type { Kysely } from "kysely";
import { findUserById, isUuid } from "./accounts/user-store.js";
import { toUser } from "./accounts/user-view.js";
import { describeDevice } from "./client-context.js";
import type { DB } from "./db/schema.js";

/**
 * zero.privacy.v1.PersonalDataService for auth (INTERNAL: service tokens only). What auth holds
 * about a person: the account, its sessions (addresses, user agents, times) and the state of its
 * second factor and mail codes — never a password hash, TOTP secret, token or code.
 */
export function createPersonalDataService(deps: { db: Kysely<DB> }): ServiceImpl<typeof PersonalDataService> {
  const { db } = deps;
  const iso = (d: Date | null) => (d === null ? null : d.toISOString());

  return {
    async exportPersonalData(req) {
      if (req.userId === "") throw invalidArgument("user_id", "is required");
      const user = isUuid(req.userId) ? await findUserById(db, req.userId) : undefined;
      if (!user) return { service: "auth", data: {} };
      const [sessions, recoveryCodes, codes] = await Promise.all([
        db
          .selectFrom("sessions")
          .selectAll()
          .where("user_id", "=", user.id)
          .orderBy("created_at", "desc")
          .execute(),
        db
          .selectFrom("recovery_codes")
          .select(["created_at", "used_at"])
          .where("user_id", "=", user.id)
          .execute(),
        db
          .selectFrom("one_time_codes")
          .select(["purpose", "email", "created_at", "expires_at", "used_at"])
          .where("user_id", "=", user.id)
          .execute(),
      ]);
      const view = toUser(user);
      const data: JsonObject = {
        account: {
          id: user.id,
          email: user.email,
          firstName: user.first_name,
          lastName: user.last_name,
          roles: user.roles,
          status: user.status,
          createTime: view.createTime ? timestampDate(view.createTime).toISOString() : null,
          emailVerifiedTime: iso(user.email_verified_at),
          lastLoginTime: iso(user.last_login_at),
          passwordChangeTime: iso(user.password_changed_at),
          deactivateTime: iso(user.deactivated_at),
        },
        twoFactor: {
          enabled: user.totp_enabled_at !== null,
          enableTime: iso(user.totp_enabled_at),
          recoveryCodesLeft: recoveryCodes.filter((c) => c.used_at === null).length,
        },
        sessions: sessions.map((s) => ({
          id: s.id,
          createTime: s.created_at.toISOString(),
          lastUseTime: s.last_used_at.toISOString(),
          expireTime: s.expires_at.toISOString(),
          ipAddress: s.ip,
          userAgent: s.user_agent,
          device: describeDevice(s.user_agent),
          twoFactor: s.two_factor,
          endTime: iso(s.revoked_at),
          endReason: s.revoke_reason,
        })),
        emailCodes: codes.map((c) => ({
          purpose: c.purpose,
          sentTo: c.email,
          createTime: c.created_at.toISOString(),
          expireTime: c.expires_at.toISOString(),
          useTime: iso(c.used_at),
        })),
      };
      return { service: "auth", data };
    },
  };
}
