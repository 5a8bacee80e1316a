import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { DomainError } from "@zero/kit/errors";
import { createPageTokens, pageSizeOf } from "@zero/kit/page-token";
import { SessionSchema, type SessionService } from "@zero/proto/zero/auth/v1/session_pb";
import type { Kysely } from "kysely";
import { isUuid } from "./accounts/user-store.js";
import { callerOf } from "./caller.js";
import { describeDevice } from "./client-context.js";
import type { DB } from "./db/schema.js";
import type { Sessions } from "./tokens/sessions.js";

/** zero.auth.v1.SessionService: a user sees and ends their own sessions only. */
export function createSessionService(deps: {
  db: Kysely<DB>;
  sessions: Sessions;
}): ServiceImpl<typeof SessionService> {
  const { db, sessions } = deps;
  // Another user's session and a session that does not exist get the same answer: ids are not an
  // oracle for what exists.
  const notFound = () => new DomainError("not_found", "no session of yours has this id");

  return {
    async listSessions(req, ctx) {
      const caller = callerOf(ctx);
      // 50 by default: a user's sessions usually fit on one page.
      const size = pageSizeOf(req.pageSize, { default: 50 });
      const tokens = createPageTokens({
        list: "sessions",
        filters: { userId: caller.userId },
        cursor: { at: "timestamp", id: "uuid" },
      });
      const after = tokens.decode(req.pageToken);
      const rows = await sessions.list(caller.userId, {
        size,
        ...(after === undefined ? {} : { after: { lastUsedAt: after.at, id: after.id } }),
      });
      const last = rows.at(-1);
      return {
        sessions: rows.map((row) =>
          create(SessionSchema, {
            id: row.id,
            createTime: timestampFromDate(row.created_at),
            lastUseTime: timestampFromDate(row.last_used_at),
            expireTime: timestampFromDate(row.expires_at),
            ipAddress: row.ip ?? "",
            userAgent: row.user_agent ?? "",
            device: describeDevice(row.user_agent),
            current: row.id === caller.sessionId,
          }),
        ),
        // A full page may have more after it (this list reads no row ahead).
        nextPageToken:
          rows.length === size && last !== undefined
            ? tokens.encode({ at: last.last_used_at, id: last.id })
            : "",
      };
    },

    async revokeSession(req, ctx) {
      const caller = callerOf(ctx);
      if (!isUuid(req.sessionId)) throw notFound();
      const outcome = await db.transaction().execute(async (trx) => {
        const owned = await trx
          .selectFrom("sessions")
          .select(["id", "revoked_at"])
          .where("id", "=", req.sessionId)
          .where("user_id", "=", caller.userId)
          .executeTakeFirst();
        if (!owned) return undefined;
        return sessions.revokeIn(trx, { userId: caller.userId, sessionIds: [owned.id] }, "revoked_by_user");
      });
      if (outcome === undefined) throw notFound();
      // Ending an ended session again is fine (idempotent).
      await sessions.announce({ sessionIds: outcome });
      return {};
    },
  };
}
