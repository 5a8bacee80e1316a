import { startAuthServer, type AuthServer } from "@zero/auth/auth-server";
import { loadConfig as loadAuthConfig } from "@zero/auth/config";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { connect } from "@nats-io/transport-node";
import { ensureStream } from "@zero/kit/events/streams";
import { createLogger } from "@zero/kit/log";
import { createTestDatabase, type TestDatabase } from "@zero/testkit/postgres";
import { startNats, type TestNats } from "@zero/testkit/nats";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { startUsersServer, type UsersServer } from "../src/users-server.js";

// users with the real auth service in front of it, both behind the gateway: a registration's event
// creates the profile, tokens are verified against auth's published keys, the export asks auth
// with a real service token (IssueServiceToken), and an admin's deletion erases the profile.

let databases: TestDatabase[] = [];
let nats: TestNats;
let redis: TestRedis;
let auth: AuthServer;
let users: UsersServer;
let gateway: Gateway;
const logger = createLogger("test", { level: "silent" });
const admin = { email: "admin@example.com", password: "an admin password for tests" };

beforeAll(async () => {
  const [authDb, usersDb] = await Promise.all([
    createTestDatabase("users_auth"),
    createTestDatabase("users_real"),
  ]);
  databases = [authDb, usersDb];
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const secret = randomBytes(32).toString("base64url");
  auth = await startAuthServer({
    config: loadAuthConfig({
      PORT: "0",
      DATABASE_URL: authDb.url,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      AUTH_SERVICE_CLIENTS: `users:${createHash("sha256").update(secret).digest("hex")}`,
      AUTH_BOOTSTRAP_ADMIN_EMAIL: admin.email,
      AUTH_BOOTSTRAP_ADMIN_PASSWORD: admin.password,
    }),
    logger,
    host: "127.0.0.1",
  });
  users = await startUsersServer({
    config: loadConfig({
      PORT: "0",
      DATABASE_URL: usersDb.url,
      NATS_URL: nats.url,
      AUTH_URL: auth.url,
      SERVICE_CLIENT_SECRET: secret,
      PERSONAL_DATA_SERVICES: "auth",
    }),
    logger,
    host: "127.0.0.1",
  });
  gateway = await startGateway({
    services: publicServices,
    upstreamUrls: { auth: auth.url, users: users.url },
    logger,
    host: "127.0.0.1",
    port: 0,
  });
  // auth creates ZERO_AUTH in the background; users' consumers wait for it.
  const nc = await connect({ servers: nats.url });
  await ensureStream(nc, { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] });
  await nc.close();
});

afterAll(async () => {
  await gateway?.close(2000);
  await users?.close(2000);
  await auth?.close(2000);
  await Promise.all([nats?.stop(), redis?.stop()]);
  await Promise.all(databases.map((d) => d.drop()));
});

async function rest(method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(`${gateway.url}${path}`, {
    method,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> };
}

async function login(email: string, password: string): Promise<string> {
  const res = await rest("POST", "/v1/auth/login", { email, password });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body["accessToken"] as string;
}

async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("users with the real auth service, through the gateway", () => {
  it("registration → profile; export with auth's part; admin deletion → erasure", async () => {
    const email = `real-${Date.now()}@example.com`;
    const password = "correct horse battery staple";
    const registered = await rest("POST", "/v1/auth/register", {
      email,
      password,
      firstName: "Real",
      lastName: "Person",
    });
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    const userId = (registered.body["user"] as { id: string }).id;
    const token = await login(email, password);

    const profile = await eventually(async () => {
      const res = await rest("GET", "/v1/users/me/profile", undefined, token);
      return res.status === 200 ? (res.body["profile"] as Record<string, unknown>) : undefined;
    }, "the profile created from UserRegistered");
    expect(profile).toMatchObject({ userId, firstName: "Real", lastName: "Person" });
    const created = await rest(
      "POST",
      "/v1/users/me/addresses",
      { recipientName: "Real Person", line1: "1 Real Road", city: "Berlin", countryCode: "DE" },
      token,
    );
    expect(created.status).toBe(201);

    const exported = await rest("GET", "/v1/users/me/export", undefined, token);
    expect(exported.status, JSON.stringify(exported.body)).toBe(200);
    const services = exported.body["services"] as Record<string, Record<string, unknown>>;
    expect(Object.keys(services)).toEqual(["users", "auth"]);
    expect(services["users"]).toMatchObject({
      profile: { firstName: "Real" },
      addresses: [{ line1: "1 Real Road" }],
    });
    expect(JSON.stringify(services["auth"])).toContain(email);
    expect(JSON.stringify(exported.body)).not.toMatch(/argon2|password_hash|passwordHash/i);

    const adminToken = await login(admin.email, admin.password);
    const deleted = await rest("DELETE", `/v1/admin/users/${userId}`, undefined, adminToken);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
    await eventually(async () => {
      const res = await rest("GET", `/v1/users/${userId}/profile`, undefined, adminToken);
      return res.status === 404 ? true : undefined;
    }, "the erasure");
    expect(
      await users.db.selectFrom("addresses").select("id").where("user_id", "=", userId).execute(),
    ).toEqual([]);
  });
});
