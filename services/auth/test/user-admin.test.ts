import { Code } from "@connectrpc/connect";
import { UserStatus } from "@zero/proto/zero/auth/v1/auth_pb";
import { RolesChangedSchema, UserDeletedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { SigningKeyState } from "@zero/proto/zero/auth/v1/signing_keys_pb";
import { decodeJwt } from "jose";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startTestAuth, waitForEvents, type SignedIn, type TestAuth } from "./fixtures.js";

const ADMIN = { email: "root@example.com", password: "bootstrap admin passphrase" };
let auth: TestAuth;
let admin: SignedIn;

beforeAll(async () => {
  auth = await startTestAuth({
    AUTH_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
    AUTH_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
  });
  const login = await auth.client.login(ADMIN);
  admin = {
    ...ADMIN,
    userId: login.user!.id,
    accessToken: login.accessToken,
    refreshToken: login.refreshToken,
  };
});

afterAll(async () => {
  await auth?.close();
});

describe("the first admin", () => {
  it("comes from configuration, with the admin role in its token", async () => {
    expect(decodeJwt(admin.accessToken)["roles"]).toEqual(["customer", "admin"]);
    const { user } = await auth.as(admin.accessToken).admin.getUser({ userId: admin.userId });
    expect(user).toMatchObject({ email: ADMIN.email, emailVerified: true, status: UserStatus.ACTIVE });
  });
});

describe("access to admin RPCs", () => {
  it("is refused to anonymous callers and to customers", async () => {
    const customer = await auth.signUp();
    expect((await rpcError(auth.anonymous().admin.listUsers({}))).code).toBe(Code.Unauthenticated);
    const denied = await rpcError(auth.as(customer.accessToken).admin.listUsers({}));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(
      (await rpcError(auth.as(customer.accessToken).admin.deleteUser({ userId: admin.userId }))).code,
    ).toBe(Code.PermissionDenied);
    expect((await rpcError(auth.as(customer.accessToken).signingKeys.rotateSigningKey({}))).code).toBe(
      Code.PermissionDenied,
    );
  });
});

describe("UserAdminService", () => {
  it("lists accounts newest first with filters and cursor pagination", async () => {
    const tag = `list-${Date.now()}`;
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await auth.signUp({ email: `${tag}-${i}@example.com` }));
    const api = auth.as(admin.accessToken).admin;
    const first = await api.listUsers({ emailContains: tag.toUpperCase(), pageSize: 2 });
    expect(first.users.map((u) => u.email)).toEqual([`${tag}-4@example.com`, `${tag}-3@example.com`]);
    const second = await api.listUsers({ emailContains: tag, pageSize: 2, pageToken: first.nextPageToken });
    const third = await api.listUsers({ emailContains: tag, pageSize: 2, pageToken: second.nextPageToken });
    expect([...second.users, ...third.users].map((u) => u.email)).toEqual([
      `${tag}-2@example.com`,
      `${tag}-1@example.com`,
      `${tag}-0@example.com`,
    ]);
    expect(third.nextPageToken).toBe("");
    // LIKE wildcards are plain text.
    expect((await api.listUsers({ emailContains: "%" })).users).toEqual([]);
    expect((await api.listUsers({ role: "admin" })).users.map((u) => u.email)).toEqual([ADMIN.email]);
    expect((await rpcError(api.listUsers({ role: "superuser" }))).code).toBe(Code.InvalidArgument);
    expect((await rpcError(api.listUsers({ pageToken: "nope" }))).code).toBe(Code.InvalidArgument);
    expect((await rpcError(api.listUsers({ pageSize: -1 }))).code).toBe(Code.InvalidArgument);
  });

  it("answers NOT_FOUND for unknown and malformed ids", async () => {
    const api = auth.as(admin.accessToken).admin;
    for (const userId of [randomUUID(), "42", "' or 1=1 --"]) {
      expect((await rpcError(api.getUser({ userId }))).code).toBe(Code.NotFound);
    }
  });

  it("changes roles: RolesChanged, old tokens refused at once, the next refresh carries the new roles", async () => {
    const user = await auth.signUp();
    const api = auth.as(admin.accessToken).admin;
    const { user: updated } = await api.setUserRoles({
      userId: user.userId,
      roles: ["support", "customer", "support"],
    });
    expect(updated?.roles).toEqual(["support", "customer"]);
    const [event] = await waitForEvents(auth.nats.url, RolesChangedSchema, (e) => e.userId === user.userId);
    expect(event!.event).toMatchObject({
      roles: ["support", "customer"],
      previousRoles: ["customer"],
      changedBy: admin.userId,
    });

    expect((await rpcError(auth.as(user.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    const refreshed = await auth.client.refreshToken({ refreshToken: user.refreshToken });
    expect(decodeJwt(refreshed.accessToken)["roles"]).toEqual(["support", "customer"]);
    await expect(auth.as(refreshed.accessToken).auth.getMe({})).resolves.toBeDefined();

    for (const roles of [["service"], ["root"], []]) {
      const error = await rpcError(api.setUserRoles({ userId: user.userId, roles }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/roles/);
    }
  });

  it("keeps at least one active admin", async () => {
    const api = auth.as(admin.accessToken).admin;
    const demote = await rpcError(api.setUserRoles({ userId: admin.userId, roles: ["customer"] }));
    expect(demote.code).toBe(Code.FailedPrecondition);
    expect((await rpcError(api.deactivateUser({ userId: admin.userId }))).code).toBe(Code.FailedPrecondition);
    expect((await rpcError(api.deleteUser({ userId: admin.userId }))).code).toBe(Code.FailedPrecondition);
  });

  it("deactivates (sessions end, sign-in refused) and reactivates", async () => {
    const user = await auth.signUp();
    const api = auth.as(admin.accessToken).admin;
    const { user: off } = await api.deactivateUser({ userId: user.userId });
    expect(off?.status).toBe(UserStatus.DEACTIVATED);
    expect((await rpcError(auth.as(user.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(auth.client.refreshToken({ refreshToken: user.refreshToken }))).code).toBe(
      Code.Unauthenticated,
    );
    const login = await rpcError(auth.client.login({ email: user.email, password: user.password }));
    expect(login.code).toBe(Code.PermissionDenied);
    expect(login.rawMessage).toMatch(/deactivated/);
    // Wrong password on a deactivated account says nothing about it.
    expect(
      (await rpcError(auth.client.login({ email: user.email, password: "not the password!" }))).rawMessage,
    ).toBe("invalid email or password");
    expect((await api.listUsers({ status: UserStatus.DEACTIVATED })).users.map((u) => u.id)).toContain(
      user.userId,
    );

    await api.reactivateUser({ userId: user.userId });
    await expect(auth.client.login({ email: user.email, password: user.password })).resolves.toBeDefined();
  });

  it("deletes an account: UserDeleted, tokens refused, the email free again", async () => {
    const user = await auth.signUp();
    await auth.as(admin.accessToken).admin.deleteUser({ userId: user.userId });
    const [event] = await waitForEvents(auth.nats.url, UserDeletedSchema, (e) => e.userId === user.userId);
    expect(event!.event.deleteTime).toBeDefined();
    expect((await rpcError(auth.as(user.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(auth.as(admin.accessToken).admin.getUser({ userId: user.userId }))).code).toBe(
      Code.NotFound,
    );
    expect((await rpcError(auth.client.login({ email: user.email, password: user.password }))).code).toBe(
      Code.Unauthenticated,
    );
    await expect(
      auth.client.register({ email: user.email, password: user.password, firstName: "", lastName: "" }),
    ).resolves.toBeDefined();
  });
});

describe("SigningKeyService", () => {
  it("rotates (pending, then active at once on request) and retires keys, with JWKS following", async () => {
    const api = auth.as(admin.accessToken).signingKeys;
    const { keys: before } = await api.listSigningKeys({});
    expect(before.map((k) => k.state)).toEqual([SigningKeyState.ACTIVE]);
    const { key: pending } = await api.rotateSigningKey({});
    expect(pending?.state).toBe(SigningKeyState.PENDING);
    expect((await auth.client.getJwks({})).keys.map((k) => k.kid)).toContain(pending?.kid);

    const { key: active } = await api.rotateSigningKey({ activateNow: true });
    expect(active).toMatchObject({ kid: pending?.kid, state: SigningKeyState.ACTIVE });
    // The admin's current token (old key) still works; new tokens use the new key.
    await expect(auth.as(admin.accessToken).auth.getMe({})).resolves.toBeDefined();
    await new Promise((r) => setTimeout(r, 200));
    const fresh = await auth.client.login(ADMIN);
    await auth.server.runMaintenance();
    const oldKid = before[0]!.kid;
    expect(JSON.parse(Buffer.from(fresh.accessToken.split(".")[0]!, "base64url").toString())).toMatchObject({
      kid: active?.kid,
    });
    expect((await rpcError(api.retireSigningKey({ kid: active!.kid }))).code).toBe(Code.FailedPrecondition);
    await auth.as(fresh.accessToken).signingKeys.retireSigningKey({ kid: oldKid });
    expect((await auth.client.getJwks({})).keys.map((k) => k.kid)).toEqual([active!.kid]);
    // Tokens signed by the retired key stop working (auth re-reads its keys every 10 s at most).
    await new Promise((r) => setTimeout(r, 10_500));
    expect((await rpcError(auth.as(admin.accessToken).auth.getMe({}))).code).toBe(Code.Unauthenticated);
    admin = { ...admin, accessToken: fresh.accessToken };
  });
});
