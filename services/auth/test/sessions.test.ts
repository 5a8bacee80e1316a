import { Code } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashRefreshToken } from "../src/tokens/sessions.js";
import { rpcError, startTestAuth, type TestAuth } from "./fixtures.js";

let auth: TestAuth;
const GRACE_SECONDS = 1;

beforeAll(async () => {
  auth = await startTestAuth({ AUTH_REFRESH_REUSE_GRACE_SECONDS: String(GRACE_SECONDS) });
});

afterAll(async () => {
  await auth?.close();
});

const sidOf = (token: string) => decodeJwt(token)["sid"] as string;

describe("RefreshToken", () => {
  it("rotates: new access and refresh tokens for the same session, the old refresh token spent", async () => {
    const user = await auth.signUp();
    const res = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    expect(res).toMatchObject({ tokenType: "Bearer", expiresIn: 900, refreshExpiresIn: 604_800 });
    expect(res.token).toBe(res.accessToken);
    expect(res.refreshToken).not.toBe(user.refreshToken);
    expect(sidOf(res.accessToken)).toBe(sidOf(user.accessToken));
    const old = await auth.server.db
      .selectFrom("refresh_tokens")
      .select(["spent_at"])
      .where("token_hash", "=", hashRefreshToken(user.refreshToken))
      .executeTakeFirstOrThrow();
    expect(old.spent_at).not.toBeNull();
    // The new pair works.
    await expect(auth.as(res.accessToken).auth.getMe({})).resolves.toMatchObject({
      user: { id: user.userId },
    });
    await expect(auth.client.refreshToken({ refreshToken: res.refreshToken })).resolves.toBeDefined();
  });

  it("revokes the whole session when a spent token is presented again after the grace window", async () => {
    const user = await auth.signUp();
    const rotated = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    await sleep(GRACE_SECONDS * 1000 + 300);

    const reuse = await rpcError(auth.client.refreshToken({ refreshToken: user.refreshToken }));
    expect(reuse.code).toBe(Code.Unauthenticated);
    expect(reuse.rawMessage).toMatch(/already used.*session has been ended/);

    // The family is dead: the newest refresh token and the session's access tokens too.
    const successor = await rpcError(auth.client.refreshToken({ refreshToken: rotated.refreshToken }));
    expect(successor.rawMessage).toMatch(/session has ended/);
    for (const token of [user.accessToken, rotated.accessToken]) {
      const error = await rpcError(auth.as(token).auth.getMe({}));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(/revoked/);
    }
    const session = await auth.server.db
      .selectFrom("sessions")
      .select(["revoke_reason"])
      .where("id", "=", sidOf(user.accessToken))
      .executeTakeFirstOrThrow();
    expect(session.revoke_reason).toBe("refresh_token_reuse");
    // Other services learn it from the shared revocation list.
    const { Redis } = await import("ioredis");
    const redis = new Redis(auth.redis.url);
    try {
      expect(await redis.get(`zero:revoked:session:${sidOf(user.accessToken)}`)).toBe("1");
    } finally {
      redis.disconnect();
    }
  });

  it("lets a retry within the grace window through when the answer was lost, and then only the retry's token lives", async () => {
    const user = await auth.signUp();
    const lost = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    // The client never saw `lost` and retries with the token it has.
    const retried = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    expect(retried.refreshToken).not.toBe(lost.refreshToken);
    await expect(auth.client.refreshToken({ refreshToken: retried.refreshToken })).resolves.toBeDefined();

    // Whoever holds the replaced token (a thief who raced the owner) ends the session by using it.
    const other = await auth.signUp();
    const a = await auth.client.refreshToken({ refreshToken: other.refreshToken });
    const b = await auth.client.refreshToken({ refreshToken: other.refreshToken });
    const stolen = await rpcError(auth.client.refreshToken({ refreshToken: a.refreshToken }));
    expect(stolen.rawMessage).toMatch(/already used/);
    expect((await rpcError(auth.client.refreshToken({ refreshToken: b.refreshToken }))).rawMessage).toMatch(
      /session has ended/,
    );
  });

  it("refuses a spent token within the grace window once its successor has been used", async () => {
    const user = await auth.signUp();
    const next = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    await auth.client.refreshToken({ refreshToken: next.refreshToken });
    const error = await rpcError(auth.client.refreshToken({ refreshToken: user.refreshToken }));
    expect(error.rawMessage).toMatch(/already used/);
  });

  it("refuses expired, unknown and malformed tokens; an empty one is a bad request", async () => {
    const user = await auth.signUp();
    await auth.server.db
      .updateTable("refresh_tokens")
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where("token_hash", "=", hashRefreshToken(user.refreshToken))
      .execute();
    expect(
      (await rpcError(auth.client.refreshToken({ refreshToken: user.refreshToken }))).rawMessage,
    ).toMatch(/expired/);
    for (const refreshToken of ["A".repeat(43), "not a token", "x".repeat(5000)]) {
      const error = await rpcError(auth.client.refreshToken({ refreshToken }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(/invalid/);
    }
    expect((await rpcError(auth.client.refreshToken({ refreshToken: "" }))).code).toBe(Code.InvalidArgument);
  });
});

describe("Logout and LogoutEverywhere", () => {
  it("ends this session only: its tokens are refused, another session keeps working", async () => {
    const user = await auth.signUp();
    const second = await auth.client.login({ email: user.email, password: user.password });
    await auth.as(user.accessToken).auth.logout({});

    const afterLogout = await rpcError(auth.as(user.accessToken).auth.getMe({}));
    expect(afterLogout.code).toBe(Code.Unauthenticated);
    expect((await rpcError(auth.client.refreshToken({ refreshToken: user.refreshToken }))).code).toBe(
      Code.Unauthenticated,
    );
    await expect(auth.as(second.accessToken).auth.getMe({})).resolves.toMatchObject({
      user: { id: user.userId },
    });
  });

  it("ends every session of the caller", async () => {
    const user = await auth.signUp();
    const second = await auth.client.login({ email: user.email, password: user.password });
    const res = await auth.as(user.accessToken).auth.logoutEverywhere({});
    expect(res.revokedSessions).toBe(2);
    for (const token of [user.accessToken, second.accessToken]) {
      expect((await rpcError(auth.as(token).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    }
    expect((await rpcError(auth.client.refreshToken({ refreshToken: second.refreshToken }))).code).toBe(
      Code.Unauthenticated,
    );
    // Signing in again works.
    await expect(auth.client.login({ email: user.email, password: user.password })).resolves.toBeDefined();
  });
});

describe("SessionService", () => {
  it("lists the caller's sessions with address, user agent, device and the current one marked", async () => {
    const user = await auth.signUp();
    const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const other = await auth
      .anonymous({ "x-forwarded-for": "198.51.100.7, 203.0.113.50", "user-agent": firefox })
      .auth.login({ email: user.email, password: user.password });
    const { sessions, nextPageToken } = await auth.as(other.accessToken).sessions.listSessions({});
    expect(nextPageToken).toBe("");
    expect(sessions).toHaveLength(2);
    const current = sessions.find((s) => s.current);
    expect(current).toMatchObject({
      id: sidOf(other.accessToken),
      // The address nearest to Zero: an earlier entry is whatever the client wrote.
      ipAddress: "203.0.113.50",
      userAgent: firefox,
      device: "Firefox on Linux",
    });
    expect(sessions[0]?.id).toBe(current?.id); // most recently used first

    const page = await auth.as(other.accessToken).sessions.listSessions({ pageSize: 1 });
    expect(page.sessions).toHaveLength(1);
    const rest = await auth
      .as(other.accessToken)
      .sessions.listSessions({ pageSize: 1, pageToken: page.nextPageToken });
    expect(rest.sessions.map((s) => s.id)).toEqual([sidOf(user.accessToken)]);
    const bad = await rpcError(auth.as(other.accessToken).sessions.listSessions({ pageToken: "garbage" }));
    expect(bad.code).toBe(Code.InvalidArgument);
  });

  it("ends one of the caller's sessions by id", async () => {
    const user = await auth.signUp();
    const phone = await auth.client.login({ email: user.email, password: user.password });
    await auth.as(user.accessToken).sessions.revokeSession({ sessionId: sidOf(phone.accessToken) });
    expect((await rpcError(auth.as(phone.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    const { sessions } = await auth.as(user.accessToken).sessions.listSessions({});
    expect(sessions.map((s) => s.id)).toEqual([sidOf(user.accessToken)]);
    // Idempotent.
    await auth.as(user.accessToken).sessions.revokeSession({ sessionId: sidOf(phone.accessToken) });
  });

  it("never shows or ends another user's session: guessed ids are NOT_FOUND like missing ones", async () => {
    const victim = await auth.signUp();
    const attacker = await auth.signUp();
    for (const sessionId of [sidOf(victim.accessToken), randomUUID(), "1", "../sessions", ""]) {
      const error = await rpcError(auth.as(attacker.accessToken).sessions.revokeSession({ sessionId }));
      expect(error.code, sessionId).toBe(Code.NotFound);
      expect(error.rawMessage).toBe("no session of yours has this id");
    }
    const { sessions } = await auth.as(attacker.accessToken).sessions.listSessions({});
    expect(sessions.map((s) => s.id)).toEqual([sidOf(attacker.accessToken)]);
    await expect(auth.as(victim.accessToken).auth.getMe({})).resolves.toBeDefined();
  });
});
