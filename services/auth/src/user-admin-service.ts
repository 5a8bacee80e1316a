import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArgument } from "@zero/kit/errors";
import { createPageTokens, pageSizeOf } from "@zero/kit/page-token";
import { requirePrincipal } from "@zero/kit/principal";
import { UserStatus } from "@zero/proto/zero/auth/v1/auth_pb";
import { RolesChangedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import type { UserAdminService } from "@zero/proto/zero/auth/v1/user_admin_pb";
import type { Kysely, Transaction } from "kysely";
import { eraseAccount } from "./accounts/account-deletion.js";
import { isRole, ROLES } from "./accounts/roles.js";
import {
  countActiveAdmins,
  findUserById,
  listUsers,
  lockUserById,
  updateUser,
  type UserFilter,
} from "./accounts/user-store.js";
import { toUser } from "./accounts/user-view.js";
import type { DB, UserRow, UserStatusValue } from "./db/schema.js";
import { recordEvent } from "./events.js";
import type { Sessions } from "./tokens/sessions.js";

const STATUS_FILTER: Partial<Record<UserStatus, UserStatusValue>> = {
  [UserStatus.ACTIVE]: "active",
  [UserStatus.DEACTIVATED]: "deactivated",
};

/**
 * zero.auth.v1.UserAdminService (admins only, enforced by the kit from the proto). Changes that
 * take rights away — deactivation, fewer roles, deletion — also refuse the account's access tokens
 * issued before, so they apply now rather than when those tokens expire. The last active admin
 * cannot be demoted, deactivated or deleted: someone must be able to administer the platform.
 */
export function createUserAdminService(deps: {
  db: Kysely<DB>;
  sessions: Sessions;
  relay: { wake(): void };
}): ServiceImpl<typeof UserAdminService> {
  const { db, sessions } = deps;
  const notFound = () => new DomainError("not_found", "no account has this id");

  /** Locks the target, runs the change; answers the updated row and the sessions it ended. */
  const change = async (
    userId: string,
    work: (
      trx: Transaction<DB>,
      user: UserRow,
      now: Date,
    ) => Promise<{ user: UserRow | undefined; ended: string[] }>,
  ) => {
    const now = new Date();
    const result = await db.transaction().execute(async (trx) => {
      const user = await lockUserById(trx, userId);
      if (!user) throw notFound();
      return work(trx, user, now);
    });
    deps.relay.wake();
    await sessions.announce({ sessionIds: result.ended, userId, tokensIssuedBefore: now });
    return result.user;
  };

  const keepAnAdmin = async (trx: Kysely<DB>, user: UserRow, action: string) => {
    if (user.roles.includes("admin") && user.status === "active" && (await countActiveAdmins(trx)) <= 1) {
      throw new DomainError(
        "failed_precondition",
        `cannot ${action} the last active admin: make another admin first`,
      );
    }
  };

  return {
    async listUsers(req) {
      const size = pageSizeOf(req.pageSize, { default: 50 });
      const role = req.role.trim();
      if (role !== "" && !isRole(role)) throw invalidArgument("role", `must be one of ${ROLES.join(", ")}`);
      const emailContains = req.emailContains.trim().toLowerCase();
      const filter: UserFilter = {
        ...(emailContains === "" ? {} : { emailContains }),
        ...(role === "" ? {} : { role }),
        ...(STATUS_FILTER[req.status] === undefined ? {} : { status: STATUS_FILTER[req.status] }),
      };
      const tokens = createPageTokens({
        list: "users",
        filters: filter,
        cursor: { at: "timestamp", id: "uuid" },
      });
      const after = tokens.decode(req.pageToken);
      const rows = await listUsers(db, filter, {
        size,
        ...(after === undefined ? {} : { after: { createdAt: after.at, id: after.id } }),
      });
      const last = rows.at(-1);
      return {
        users: rows.map(toUser),
        // A full page may have more after it (this list reads no row ahead).
        nextPageToken:
          rows.length === size && last !== undefined
            ? tokens.encode({ at: last.created_at, id: last.id })
            : "",
      };
    },

    async getUser(req) {
      const user = await findUserById(db, req.userId);
      if (!user) throw notFound();
      return { user: toUser(user) };
    },

    async deactivateUser(req, ctx) {
      if (req.userId === requirePrincipal(ctx).subject) {
        throw new DomainError("failed_precondition", "you cannot deactivate your own account");
      }
      const user = await change(req.userId, async (trx, target, now) => {
        if (target.status === "deactivated") return { user: target, ended: [] };
        await keepAnAdmin(trx, target, "deactivate");
        const updated = await updateUser(trx, target.id, {
          status: "deactivated",
          deactivated_at: now,
          tokens_valid_after: now,
        });
        return { user: updated, ended: await sessions.revokeIn(trx, { userId: target.id }, "deactivated") };
      });
      return { user: user && toUser(user) };
    },

    async reactivateUser(req) {
      const user = await change(req.userId, async (trx, target) => ({
        user:
          target.status === "active"
            ? target
            : await updateUser(trx, target.id, { status: "active", deactivated_at: null }),
        ended: [],
      }));
      return { user: user && toUser(user) };
    },

    async setUserRoles(req, ctx) {
      const roles = [...new Set(req.roles.map((r) => r.trim()))];
      const unknown = roles.filter((r) => !isRole(r));
      if (roles.length === 0 || unknown.length > 0) {
        throw invalidArgument(
          "roles",
          unknown.length > 0
            ? `unknown role ${unknown.map((r) => JSON.stringify(r)).join(", ")}: roles are ${ROLES.join(", ")}`
            : `must list at least one of ${ROLES.join(", ")}`,
        );
      }
      const changedBy = requirePrincipal(ctx).subject;
      const user = await change(req.userId, async (trx, target, now) => {
        const same = roles.length === target.roles.length && roles.every((r) => target.roles.includes(r));
        if (same) return { user: target, ended: [] };
        if (!roles.includes("admin")) await keepAnAdmin(trx, target, "remove the admin role from");
        const updated = await updateUser(trx, target.id, { roles, tokens_valid_after: now });
        await recordEvent(trx, RolesChangedSchema, {
          userId: target.id,
          roles,
          previousRoles: target.roles,
          changedBy,
          changeTime: timestampFromDate(now),
        });
        // Sessions stay: their next refresh carries the new roles.
        return { user: updated, ended: [] };
      });
      return { user: user && toUser(user) };
    },

    async deleteUser(req, ctx) {
      if (req.userId === requirePrincipal(ctx).subject) {
        throw new DomainError(
          "failed_precondition",
          "use DeleteAccount (POST /v1/auth/account/delete) to delete your own account",
        );
      }
      await change(req.userId, async (trx, target, now) => {
        await keepAnAdmin(trx, target, "delete");
        return { user: undefined, ended: await eraseAccount(trx, target.id, now) };
      });
      return {};
    },
  };
}
