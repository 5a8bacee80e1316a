import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createServiceTokenSource, serviceAuthInterceptor } from "@zero/kit/service-identity";
import { UserDeletedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { sql } from "kysely";
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startTestAuth, waitForEvents, waitForMail, type TestAuth } from "./fixtures.js";

// GDPR: what auth holds about a person (export), and that erasure leaves nothing personal behind.

const secret = randomBytes(32).toString("base64");
let auth: TestAuth;
let personalData: ReturnType<typeof createClient<typeof PersonalDataService>>;

beforeAll(async () => {
  auth = await startTestAuth(
    { AUTH_SERVICE_CLIENTS: `users:${createHash("sha256").update(secret).digest("hex")}` },
    { notifications: true },
  );
  const tokens = createServiceTokenSource({
    authUrl: auth.server.url,
    clientId: "users",
    clientSecret: secret,
  });
  personalData = createClient(
    PersonalDataService,
    createConnectTransport({
      baseUrl: auth.server.url,
      httpVersion: "1.1",
      interceptors: [serviceAuthInterceptor(tokens)],
    }),
  );
});

afterAll(async () => {
  await auth?.close();
});

const DEVICE = {
  "x-forwarded-for": "203.0.113.201",
  "user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
};

describe("ExportPersonalData", () => {
  it("returns the account, sessions and mail codes — never a hash, token, secret or code", async () => {
    const user = await auth.signUp({ firstName: "Export", lastName: "Me" });
    const login = await auth.anonymous(DEVICE).auth.login({ email: user.email, password: user.password });
    const code = (await waitForMail(auth, (m) => m.to === user.email)).variables["verification_code"]!;
    const { service, data } = await personalData.exportPersonalData({ userId: user.userId });
    expect(service).toBe("auth");
    expect(data).toMatchObject({
      account: {
        id: user.userId,
        email: user.email,
        firstName: "Export",
        lastName: "Me",
        roles: ["customer"],
        status: "active",
      },
      twoFactor: { enabled: false, recoveryCodesLeft: 0 },
      emailCodes: [{ purpose: "verify_email", sentTo: user.email, useTime: null }],
    });
    const sessions = (data as { sessions: Record<string, unknown>[] }).sessions;
    expect(sessions).toHaveLength(2);
    expect(sessions).toContainEqual(
      expect.objectContaining({
        ipAddress: "203.0.113.201",
        userAgent: DEVICE["user-agent"],
        device: "Safari on macOS",
      }),
    );
    const text = JSON.stringify(data);
    for (const secretValue of [
      user.password,
      user.refreshToken,
      login.refreshToken,
      login.accessToken,
      code,
      "$argon2id",
    ]) {
      expect(text).not.toContain(secretValue);
    }
  });

  it("answers an empty object for someone auth does not know, and names a missing id", async () => {
    for (const userId of ["01890000-0000-7000-8000-000000000000", "not-a-uuid"]) {
      expect(await personalData.exportPersonalData({ userId })).toMatchObject({ service: "auth", data: {} });
    }
    expect((await rpcError(personalData.exportPersonalData({ userId: "" }))).code).toBe(Code.InvalidArgument);
  });
});

describe("DeleteAccount (erasure)", () => {
  it("needs the password", async () => {
    const user = await auth.signUp();
    const error = await rpcError(
      auth.as(user.accessToken).auth.deleteAccount({ password: "not the password!" }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    await expect(auth.as(user.accessToken).auth.getMe({})).resolves.toBeDefined();
  });

  it("leaves nothing personal in any table: only the id, in the tombstone and the UserDeleted event", async () => {
    const names = { firstName: "Erasmus", lastName: "Forgetme" };
    // An address and agent no other account in this database used.
    const device = { "x-forwarded-for": "198.51.100.250", "user-agent": "ErasureTest/9.9 (unique agent)" };
    const user = await auth.signUp(names);
    await auth.anonymous(device).auth.login({ email: user.email, password: user.password });
    await rpcError(auth.anonymous(device).auth.login({ email: user.email, password: "a wrong password" }));
    await auth.client.requestPasswordReset({ email: user.email });
    await waitForMail(auth, (m) => m.to === user.email && m.template === "password-reset");

    await auth.as(user.accessToken).auth.deleteAccount({ password: user.password });
    await waitForEvents(auth.nats.url, UserDeletedSchema, (e) => e.userId === user.userId);

    const { rows: tables } = await sql<{ name: string }>`
      select tablename as name from pg_tables where schemaname = 'public'`.execute(auth.server.db);
    expect(tables.length).toBeGreaterThanOrEqual(9);
    const personal = [
      user.email,
      names.firstName,
      names.lastName,
      device["x-forwarded-for"],
      device["user-agent"],
    ];
    const holdingId: string[] = [];
    for (const { name } of tables) {
      const { rows } = await sql<{ dump: string }>`select t::text as dump from ${sql.table(name)} t`.execute(
        auth.server.db,
      );
      for (const { dump } of rows) {
        // Text columns as they are, bytea (event payloads) as hex: look for both forms.
        for (const value of personal) {
          expect(dump, `${name} still holds ${value}`).not.toContain(value);
          expect(dump, `${name} still holds ${value}`).not.toContain(Buffer.from(value).toString("hex"));
        }
        if (dump.includes(user.userId) || dump.includes(Buffer.from(user.userId).toString("hex")))
          holdingId.push(name);
      }
    }
    expect(holdingId.sort()).toEqual(["deleted_users", "kit_outbox"]);
    const { rows: events } = await sql<{ subject: string }>`
      select subject from kit_outbox where position(convert_to(${user.userId}, 'UTF8') in payload) > 0`.execute(
      auth.server.db,
    );
    expect(events).toEqual([{ subject: "zero.auth.v1.UserDeleted" }]);

    expect(await personalData.exportPersonalData({ userId: user.userId })).toMatchObject({ data: {} });
    expect((await rpcError(auth.as(user.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
  });
});
