import { DomainError } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import type { TokenRevocations } from "@zero/kit/token-revocations";
import type { JWTPayload } from "jose";
import { sql, type Kysely } from "kysely";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { uuidv7 } from "uuidv7";
import type { ClientContext } from "../client-context.js";
import type { DB, SessionRow, UserRow } from "../db/schema.js";
import { SERVICE_SUBJECT_PREFIX, type AccessTokenIssuer } from "./access-token.js";

// A session is one sign-in on one device. It lives as long as its refresh tokens keep being used:
// each refresh token works once and is replaced by the next (rotation), all of them one family.
// Presenting a spent token again means two parties hold the family — the owner and a thief — so
// the whole session ends (reuse detection, OAuth 2.0 Security BCP §4.14.2). Only a retry within a
// few seconds of a use whose successor was never used counts as a lost response instead.
//
// Refresh tokens are 256 random bits stored as SHA-256 (a leak of the table hands out nothing).
// Ending a session is recorded in Postgres (authoritative: refresh refuses, auth's own RPCs refuse
// the session's access tokens) and then in the shared revocation list in Redis, so other
// services refuse its access tokens too — written only after the transaction commits.

export interface SessionTokens {
  sessionId: string;
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  refreshExpiresIn: number;
}

export type RevokeReason =
  | "logout"
  | "logout_everywhere"
  | "revoked_by_user"
  | "refresh_token_reuse"
  | "password_changed"
  | "password_reset"
  | "deactivated";

export interface Sessions {
  /** Opens a session for a signed-in user, inside the caller's transaction (with its events). */
  open(
    trx: Kysely<DB>,
    input: { user: UserRow; client: ClientContext; twoFactor: boolean },
  ): Promise<SessionTokens>;
  /** Rotates a refresh token; see the file comment for reuse and the grace window. */
  refresh(refreshToken: string, client: ClientContext): Promise<SessionTokens & { user: UserRow }>;
  /**
   * Ends sessions inside the caller's transaction and answers their ids; pass them to `announce`
   * once the transaction has committed.
   */
  revokeIn(
    trx: Kysely<DB>,
    where: { userId: string; sessionIds?: readonly string[]; exceptSessionId?: string },
    reason: RevokeReason,
  ): Promise<string[]>;
  /** Publishes ended sessions (and optionally "tokens before now") to the shared revocation list. */
  announce(ended: {
    sessionIds: readonly string[];
    userId?: string;
    tokensIssuedBefore?: Date;
  }): Promise<void>;
  /** The caller's open sessions, most recently used first. */
  list(
    userId: string,
    page: { size: number; after?: { lastUsedAt: Date; id: string } },
  ): Promise<SessionRow[]>;
  /** auth's own check of a verified access token: its session ended, its user gone or blocked. */
  isRevoked(claims: JWTPayload): Promise<boolean>;
}

export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// A refresh token is 32 bytes in base64url: anything else is not one (and is never looked up).
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/;

const invalidRefreshToken = (reason: string, message: string) =>
  new DomainError("unauthenticated", message, { reason });

export function createSessions(deps: {
  db: Kysely<DB>;
  accessTokens: AccessTokenIssuer;
  revocations: TokenRevocations;
  refreshTtlSeconds: number;
  reuseGraceSeconds: number;
  logger: Logger;
}): Sessions {
  const { db, accessTokens, revocations, logger } = deps;
  const refreshTtlMs = deps.refreshTtlSeconds * 1000;

  const newRefreshToken = async (
    trx: Kysely<DB>,
    input: { userId: string; sessionId: string; parentId: string | null; client: ClientContext; now: Date },
  ) => {
    const token = randomBytes(32).toString("base64url");
    await trx
      .insertInto("refresh_tokens")
      .values({
        id: uuidv7(),
        user_id: input.userId,
        session_id: input.sessionId,
        token_hash: hashRefreshToken(token),
        expires_at: new Date(input.now.getTime() + refreshTtlMs),
        created_at: input.now,
        parent_id: input.parentId,
        ip: input.client.ip,
        user_agent: input.client.userAgent,
      })
      .execute();
    return token;
  };

  const tokensFor = async (user: UserRow, sessionId: string, twoFactor: boolean, refreshToken: string) => {
    // Tokens issued within the second of a cut-off (role change, reset…) would be refused with
    // the older ones: wait for the next second, which happens only right after such a change.
    const cutoff = user.tokens_valid_after?.getTime();
    if (cutoff !== undefined && Math.floor(Date.now() / 1000) <= Math.floor(cutoff / 1000)) {
      await sleep(1000 - (Date.now() % 1000) + 5);
    }
    const access = await accessTokens.issueUserToken({
      userId: user.id,
      email: user.email,
      roles: user.roles,
      sessionId,
      twoFactor,
    });
    return {
      sessionId,
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken,
      refreshExpiresIn: deps.refreshTtlSeconds,
    };
  };

  const sessions: Sessions = {
    async open(trx, { user, client, twoFactor }) {
      const now = new Date();
      const sessionId = uuidv7();
      await trx
        .insertInto("sessions")
        .values({
          id: sessionId,
          user_id: user.id,
          created_at: now,
          last_used_at: now,
          expires_at: new Date(now.getTime() + refreshTtlMs),
          ip: client.ip,
          user_agent: client.userAgent,
          two_factor: twoFactor,
        })
        .execute();
      const refreshToken = await newRefreshToken(trx, {
        userId: user.id,
        sessionId,
        parentId: null,
        client,
        now,
      });
      return tokensFor(user, sessionId, twoFactor, refreshToken);
    },

    async refresh(refreshToken, client) {
      if (!REFRESH_TOKEN.test(refreshToken)) {
        throw invalidRefreshToken("REFRESH_TOKEN_INVALID", "the refresh token is invalid: sign in again");
      }
      const tokenHash = hashRefreshToken(refreshToken);
      const outcome = await db.transaction().execute(async (trx) => {
        const found = await trx
          .selectFrom("refresh_tokens")
          .select(["id", "session_id"])
          .where("token_hash", "=", tokenHash)
          .executeTakeFirst();
        if (!found) return { kind: "invalid" as const };
        // One refresh of a session at a time: concurrent uses of one family are decided in order.
        const session = await trx
          .selectFrom("sessions")
          .selectAll()
          .where("id", "=", found.session_id)
          .forUpdate()
          .executeTakeFirstOrThrow();
        const token = await trx
          .selectFrom("refresh_tokens")
          .selectAll()
          .where("id", "=", found.id)
          .executeTakeFirstOrThrow();
        const now = new Date();
        if (session.revoked_at !== null) return { kind: "ended" as const };
        if (token.expires_at <= now) return { kind: "expired" as const };

        if (token.spent_at !== null) {
          const latest = await trx
            .selectFrom("refresh_tokens")
            .select(["id", "parent_id", "spent_at"])
            .where("session_id", "=", session.id)
            .orderBy("created_at", "desc")
            .orderBy("id", "desc")
            .executeTakeFirstOrThrow();
          const lostResponse =
            now.getTime() - token.spent_at.getTime() <= deps.reuseGraceSeconds * 1000 &&
            latest.parent_id === token.id &&
            latest.spent_at === null;
          if (!lostResponse) {
            await sessions.revokeIn(
              trx,
              { userId: session.user_id, sessionIds: [session.id] },
              "refresh_token_reuse",
            );
            return { kind: "reused" as const, sessionId: session.id, userId: session.user_id };
          }
          // The successor never reached the client: it is replaced, and using it later is reuse.
          await trx
            .updateTable("refresh_tokens")
            .set({ spent_at: now })
            .where("id", "=", latest.id)
            .execute();
        } else {
          await trx.updateTable("refresh_tokens").set({ spent_at: now }).where("id", "=", token.id).execute();
        }

        const user = await trx
          .selectFrom("users")
          .selectAll()
          .where("id", "=", session.user_id)
          .executeTakeFirstOrThrow();
        if (user.status !== "active") return { kind: "ended" as const };
        const next = await newRefreshToken(trx, {
          userId: user.id,
          sessionId: session.id,
          parentId: token.id,
          client,
          now,
        });
        await trx
          .updateTable("sessions")
          .set({
            last_used_at: now,
            expires_at: new Date(now.getTime() + refreshTtlMs),
            ip: client.ip ?? session.ip,
            user_agent: client.userAgent ?? session.user_agent,
          })
          .where("id", "=", session.id)
          .execute();
        return {
          kind: "rotated" as const,
          tokens: await tokensFor(user, session.id, session.two_factor, next),
          user,
        };
      });

      switch (outcome.kind) {
        case "rotated":
          return { ...outcome.tokens, user: outcome.user };
        case "reused":
          logger.warn(
            { session_id: outcome.sessionId, user_id: outcome.userId },
            "refresh token reused: session revoked",
          );
          await sessions.announce({ sessionIds: [outcome.sessionId] });
          throw invalidRefreshToken(
            "REFRESH_TOKEN_REUSED",
            "this refresh token was already used, so its session has been ended for safety: sign in again",
          );
        case "expired":
          throw invalidRefreshToken("REFRESH_TOKEN_EXPIRED", "the refresh token has expired: sign in again");
        case "ended":
          throw invalidRefreshToken("SESSION_ENDED", "this session has ended: sign in again");
        case "invalid":
          throw invalidRefreshToken("REFRESH_TOKEN_INVALID", "the refresh token is invalid: sign in again");
      }
    },

    async revokeIn(trx, where, reason) {
      let query = trx
        .updateTable("sessions")
        .set({ revoked_at: new Date(), revoke_reason: reason })
        .where("user_id", "=", where.userId)
        .where("revoked_at", "is", null);
      if (where.sessionIds !== undefined) {
        if (where.sessionIds.length === 0) return [];
        query = query.where("id", "in", where.sessionIds);
      }
      if (where.exceptSessionId !== undefined) query = query.where("id", "!=", where.exceptSessionId);
      const rows = await query.returning("id").execute();
      return rows.map((r) => r.id);
    },

    async announce(ended) {
      try {
        await revocations.revokeSessions(ended.sessionIds);
        if (ended.userId !== undefined && ended.tokensIssuedBefore !== undefined) {
          await revocations.revokeTokensIssuedBefore(ended.userId, ended.tokensIssuedBefore);
        }
      } catch (error) {
        // The sessions are ended in Postgres (refresh refuses, auth refuses): only other services
        // may accept their access tokens until they expire.
        logger.error({ err: error }, "could not publish revoked sessions to Redis");
      }
    },

    list(userId, page) {
      let query = db
        .selectFrom("sessions")
        .selectAll()
        .where("user_id", "=", userId)
        .where("revoked_at", "is", null)
        .where("expires_at", ">", new Date());
      if (page.after !== undefined) {
        const { lastUsedAt, id } = page.after;
        query = query.where(sql<boolean>`(last_used_at, id) < (${lastUsedAt}, ${id})`);
      }
      return query.orderBy("last_used_at", "desc").orderBy("id", "desc").limit(page.size).execute();
    },

    async isRevoked(claims) {
      const sub = claims.sub ?? "";
      // Service tokens have no session and no account row.
      if (sub.startsWith(SERVICE_SUBJECT_PREFIX)) return false;
      if (!UUID.test(sub)) return true;
      const sid = claims["sid"];
      if (sid !== undefined && (typeof sid !== "string" || !UUID.test(sid))) return true;
      const row = await db
        .selectFrom("users")
        .leftJoin("sessions", (join) =>
          join
            .onRef("sessions.user_id", "=", "users.id")
            .on("sessions.id", "=", typeof sid === "string" ? sid : null),
        )
        .select([
          "users.status",
          "users.tokens_valid_after",
          "sessions.id as session_id",
          "sessions.revoked_at",
        ])
        .where("users.id", "=", sub)
        .executeTakeFirst();
      if (!row || row.status !== "active") return true;
      if (typeof sid === "string" && (row.session_id === null || row.revoked_at !== null)) return true;
      // `iat` has whole seconds: a token of the cut-off's second may predate it, so it goes too
      // (tokensFor never issues one in that second).
      const validAfter = row.tokens_valid_after;
      return validAfter !== null && (claims.iat ?? 0) <= Math.floor(validAfter.getTime() / 1000);
    },
  };
  return sessions;
}
