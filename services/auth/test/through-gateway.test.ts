import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { createLogger } from "@zero/kit/log";
import { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { SessionService } from "@zero/proto/zero/auth/v1/session_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aRegistration, bearer, rpcError, startTestAuth, type SignedIn, type TestAuth } from "./fixtures.js";

// The identity API as clients reach it: REST (canonical and legacy routes), Connect and gRPC
// through the gateway. Authorisation holds whatever the protocol.

const ADMIN = { email: "gateway-admin@example.com", password: "gateway admin passphrase" };
let auth: TestAuth;
let gateway: Gateway;
let admin: SignedIn;

beforeAll(async () => {
  auth = await startTestAuth({
    AUTH_BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
    AUTH_BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
  });
  gateway = await startGateway({
    services: publicServices,
    upstreamUrls: { auth: auth.server.url },
    logger: createLogger("gateway", { level: "silent" }),
    host: "127.0.0.1",
    port: 0,
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
  await gateway?.close(2000);
  await auth?.close();
});

async function rest(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      ...(opts.body !== undefined || opts.raw !== undefined ? { "content-type": "application/json" } : {}),
      ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
    },
    ...(opts.raw !== undefined
      ? { body: opts.raw }
      : opts.body === undefined
        ? {}
        : { body: JSON.stringify(opts.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

async function restSignUp(): Promise<SignedIn> {
  const registration = aRegistration();
  const created = await rest("POST", "/auth/register", {
    body: { email: registration.email, password: registration.password, firstName: registration.firstName },
  });
  expect(created.status).toBe(201);
  const login = await rest("POST", "/auth/login", {
    body: { email: registration.email, password: registration.password },
  });
  expect(login.status).toBe(200);
  const user = login.body["user"] as { id: string };
  return {
    email: registration.email,
    password: registration.password,
    userId: user.id,
    accessToken: login.body["accessToken"] as string,
    refreshToken: login.body["refreshToken"] as string,
  };
}

describe("legacy routes from the seeds", () => {
  it("POST /auth/login answers `token`; GET /auth/profile the user itself; GET /auth/validate and POST /auth/me validate", async () => {
    const user = await restSignUp();
    const login = await rest("POST", "/auth/login", { body: { email: user.email, password: user.password } });
    expect(login.body["token"]).toBe(login.body["accessToken"]);

    const profile = await rest("GET", "/auth/profile", { token: user.accessToken });
    expect(profile.status).toBe(200);
    expect(profile.body).toMatchObject({
      id: user.userId,
      email: user.email,
      firstName: "Ada",
      roles: ["customer"],
    });

    const validate = await rest("GET", "/auth/validate", { token: user.accessToken });
    expect(validate.body).toMatchObject({ valid: true, userId: user.userId, roles: ["customer"] });
    for (const me of [
      await rest("POST", "/auth/me", { token: user.accessToken, body: {} }),
      await rest("POST", "/auth/me", { token: user.accessToken }),
    ]) {
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ valid: true, userId: user.userId });
    }
    expect((await rest("GET", "/auth/validate")).status).toBe(401);
    expect((await rest("GET", "/auth/validate", { token: "garbage" })).status).toBe(401);
  });

  it("POST /auth/refresh rotates the refresh token", async () => {
    const user = await restSignUp();
    const res = await rest("POST", "/auth/refresh", { body: { refreshToken: user.refreshToken } });
    expect(res.status).toBe(200);
    expect(res.body["token"]).toBe(res.body["accessToken"]);
    expect(res.body["refreshToken"]).not.toBe(user.refreshToken);
    expect((await rest("POST", "/v1/auth/refresh", { body: { refresh_token: "x" } })).status).toBe(401);
  });

  it("GET /users, GET /users/{id}, DELETE /users/{id} are for admins only", async () => {
    const user = await restSignUp();
    expect((await rest("GET", "/users")).status).toBe(401);
    expect((await rest("GET", "/users", { token: user.accessToken })).status).toBe(403);
    expect((await rest("GET", `/users/${admin.userId}`, { token: user.accessToken })).status).toBe(403);
    expect((await rest("DELETE", `/users/${admin.userId}`, { token: user.accessToken })).status).toBe(403);

    const list = await rest("GET", `/users?emailContains=${encodeURIComponent(user.email)}`, {
      token: admin.accessToken,
    });
    expect(list.status).toBe(200);
    expect((list.body["users"] as { id: string }[]).map((u) => u.id)).toEqual([user.userId]);
    const one = await rest("GET", `/users/${user.userId}`, { token: admin.accessToken });
    expect(one.body).toMatchObject({ user: { id: user.userId, email: user.email } });
    expect((await rest("DELETE", `/users/${user.userId}`, { token: admin.accessToken })).status).toBe(200);
    expect((await rest("GET", `/users/${user.userId}`, { token: admin.accessToken })).status).toBe(404);
  });
});

describe("mass assignment", () => {
  it("refuses fields a client may not set (roles, status) with 400, and no path grants a role", async () => {
    const registration = aRegistration();
    for (const extra of [
      { roles: ["admin"] },
      { status: "USER_STATUS_ACTIVE" },
      { id: "0190..." },
      { emailVerified: true },
    ]) {
      const res = await rest("POST", "/v1/auth/register", {
        body: { email: registration.email, password: registration.password, ...extra },
      });
      expect(res.status, JSON.stringify(extra)).toBe(400);
    }
    const ok = await rest("POST", "/v1/auth/register", {
      body: { email: registration.email, password: registration.password },
    });
    expect(ok.body).toMatchObject({ user: { roles: ["customer"] } });
    const login = await rest("POST", "/v1/auth/login", {
      body: { email: registration.email, password: registration.password, roles: ["admin"] },
    });
    expect(login.status).toBe(400);
  });

  it("answers a NUL (U+0000) in the login email with 400 naming the field, on both routes (never 500)", async () => {
    for (const path of ["/v1/auth/login", "/auth/login"]) {
      const res = await rest("POST", path, { body: { email: "a\u0000b@example.com", password: "x" } });
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(JSON.stringify(res.body)).toContain("email: must not contain the NUL character (U+0000)");
    }
  });
});

describe("a throttled login over REST", () => {
  it("answers 429 with Retry-After from auth's RetryInfo", async () => {
    const email = `throttled-${Date.now()}@example.com`;
    const attempt = () =>
      fetch(`${gateway.url}/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, password: "not the password" }),
      });
    let last = await attempt();
    for (let i = 0; i < 7 && last.status !== 429; i++) last = await attempt();
    expect(last.status).toBe(429);
    expect(Number(last.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = (await last.json()) as { error: { details: { "@type": string; retryDelay?: string }[] } };
    expect(body.error.details).toContainEqual(
      expect.objectContaining({ "@type": "type.googleapis.com/google.rpc.RetryInfo" }),
    );
  });
});

describe("sessions of another user", () => {
  it("cannot be ended by id guessing, through REST, Connect or gRPC", async () => {
    const victim = await restSignUp();
    const attacker = await restSignUp();
    const victimSid = decodeJwt(victim.accessToken)["sid"] as string;

    const byRest = await rest("DELETE", `/v1/auth/sessions/${victimSid}`, { token: attacker.accessToken });
    expect(byRest.status).toBe(404);
    const listed = await rest("GET", "/v1/auth/sessions", { token: attacker.accessToken });
    expect((listed.body["sessions"] as { id: string }[]).map((s) => s.id)).not.toContain(victimSid);

    for (const transport of [
      createConnectTransport({
        baseUrl: gateway.url,
        httpVersion: "1.1",
        interceptors: [bearer(attacker.accessToken)],
      }),
      createGrpcTransport({ baseUrl: gateway.url, interceptors: [bearer(attacker.accessToken)] }),
    ]) {
      const error = await rpcError(
        createClient(SessionService, transport).revokeSession({ sessionId: victimSid }),
      );
      expect(error.code).toBe(Code.NotFound);
    }
    // The victim's session is intact.
    expect((await rest("GET", "/v1/auth/me", { token: victim.accessToken })).status).toBe(200);
  });

  it("a token refused after logout is refused through the gateway too", async () => {
    const user = await restSignUp();
    expect((await rest("POST", "/v1/auth/logout", { token: user.accessToken, body: {} })).status).toBe(200);
    const after = await rest("GET", "/auth/profile", { token: user.accessToken });
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ error: { status: "UNAUTHENTICATED" } });
  });
});

describe("what the gateway never routes", () => {
  it("refuses IssueServiceToken and INTERNAL methods by every protocol", async () => {
    for (const transport of [
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: gateway.url }),
    ]) {
      const token = await rpcError(
        createClient(ServiceIdentityService, transport).issueServiceToken({
          clientId: "payments",
          clientSecret: "x",
        }),
      );
      expect([Code.PermissionDenied, Code.Unimplemented, Code.NotFound]).toContain(token.code);
      const internal = await rpcError(
        createClient(PersonalDataService, transport).exportPersonalData({ userId: admin.userId }),
      );
      expect([Code.PermissionDenied, Code.Unimplemented, Code.NotFound]).toContain(internal.code);
      expect(ConnectError.from(internal).code).not.toBe(Code.Internal);
    }
  });
});
