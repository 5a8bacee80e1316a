import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createLogger } from "@zero/kit/log";
import { requirePrincipal } from "@zero/kit/principal";
import { startServer, type Server } from "@zero/kit/server";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { freePort } from "@zero/testkit/ports";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import type { Gateway } from "@zero/gateway/gateway-server";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anAddress, Code, rpcError, startTestGateway, startTestUsers, type TestUsers } from "./fixtures.js";

// The GDPR export gathers users' own data and every other personal-data service's answer, asked
// over real RPCs with users' service token. The other services are stand-ins here (their real
// implementations are tested in their own suites): kit servers that enforce INTERNAL access with
// the same token verifier, so a call without a valid service token would fail.

interface Source {
  server: Server;
  calls: { subject: string; kind: string; userId: string }[];
}

let tokens: TokenIssuer;
let auth: Source;
let payments: Source;
let users: TestUsers;
let gateway: Gateway;
const logger = createLogger("test", { level: "silent" });

async function startSource(name: string, data: (userId: string) => JsonObject, delayMs = 0): Promise<Source> {
  const calls: Source["calls"] = [];
  const server = await startServer({
    name,
    host: "127.0.0.1",
    port: 0,
    logger,
    services: [PersonalDataService],
    verifier: tokens.verifier,
    routes: (router) =>
      router.service(PersonalDataService, {
        async exportPersonalData(req, ctx) {
          const principal = requirePrincipal(ctx);
          calls.push({ subject: principal.subject, kind: principal.kind, userId: req.userId });
          if (delayMs > 0) await sleep(delayMs, undefined, { signal: ctx.signal }).catch(() => undefined);
          return { service: name, data: data(req.userId) };
        },
      }),
  });
  return { server, calls };
}

beforeAll(async () => {
  tokens = await createTokenIssuer();
  auth = await startSource("auth", (userId) => ({ account: { id: userId, email: `${userId}@example.com` } }));
  payments = await startSource("payments", (userId) => ({
    payments: [{ id: "pay_1", userId, amount: { amount: "1999", currency: "EUR" } }],
  }));
  users = await startTestUsers({
    sources: [
      { name: "auth", url: auth.server.url },
      { name: "payments", url: payments.server.url },
    ],
    tokens,
  });
  gateway = await startTestGateway(users);
});

afterAll(async () => {
  await gateway?.close(2000);
  await users?.close();
  await Promise.all([auth?.server.close(1000), payments?.server.close(1000)]);
});

describe("ExportMyData", () => {
  it("returns one document with users' own data and every other service's, asked with a service token", async () => {
    const { userId, token } = await users.aRegisteredUser({ firstName: "Frieda" });
    const client = users.client(token);
    await client.updateProfile({ userId: "me", profile: { bio: "exported bio" } });
    await client.createAddress({ userId: "me", address: anAddress({ line1: "Export Street 5" }) });

    const res = await client.exportMyData({});
    expect(res.userId).toBe(userId);
    expect(timestampDate(res.exportTime!).getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Object.keys(res.services)).toEqual(["users", "auth", "payments"]);
    expect(res.services["users"]).toMatchObject({
      profile: { userId, firstName: "Frieda", bio: "exported bio" },
      addresses: [{ line1: "Export Street 5" }],
    });
    expect(res.services["auth"]).toEqual({ account: { id: userId, email: `${userId}@example.com` } });
    expect(res.services["payments"]).toMatchObject({
      payments: [{ id: "pay_1", amount: { amount: "1999", currency: "EUR" } }],
    });
    // Each service was asked once, for this user, by the users service's identity (not the user's token).
    for (const source of [auth, payments]) {
      expect(source.calls.filter((c) => c.userId === userId)).toEqual([
        { subject: "service:users", kind: "service", userId },
      ]);
    }
  });

  it("is served through the gateway as REST (GET /v1/users/me/export) with the JSON document", async () => {
    const { userId, token } = await users.aRegisteredUser({ firstName: "Rest" });
    const res = await fetch(`${gateway.url}/v1/users/me/export`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      userId: string;
      exportTime: string;
      services: Record<string, JsonObject>;
    };
    expect(body.userId).toBe(userId);
    expect(body.exportTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(body.services["users"]).toMatchObject({ profile: { firstName: "Rest" }, addresses: [] });
    expect(Object.keys(body.services)).toEqual(["users", "auth", "payments"]);
    const anonymous = await fetch(`${gateway.url}/v1/users/me/export`);
    expect(anonymous.status).toBe(401);
  });

  it("exports only the caller: there is no way to name another user", async () => {
    const other = await users.aRegisteredUser({ firstName: "Other" });
    const me = await users.aRegisteredUser({ firstName: "Me" });
    const res = await users.client(me.token).exportMyData({});
    expect(JSON.stringify(res.services)).not.toContain(other.userId);
    expect(JSON.stringify(res.services)).not.toContain("Other");
  });
});

describe("ExportMyData when a service cannot answer", () => {
  it("fails with UNAVAILABLE naming the service that is down, instead of an incomplete export", async () => {
    const downUrl = `http://127.0.0.1:${await freePort()}`;
    const partial = await startTestUsers({
      sources: [
        { name: "auth", url: auth.server.url },
        { name: "notifications", url: downUrl },
      ],
      tokens,
    });
    try {
      const { token } = await partial.aRegisteredUser();
      const error = await rpcError(partial.client(token).exportMyData({}));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toMatch(/notifications service is unavailable/);
      expect(error.rawMessage).not.toMatch(/auth/);
    } finally {
      await partial.close();
    }
  });

  it("fails with UNAVAILABLE naming a service that does not answer within the deadline", async () => {
    const slow = await startSource("payments", () => ({}), 5_000);
    const partial = await startTestUsers({
      sources: [{ name: "payments", url: slow.server.url }],
      env: { EXPORT_TIMEOUT_MS: "300" },
      tokens,
    });
    try {
      const { token } = await partial.aRegisteredUser();
      const started = Date.now();
      const error = await rpcError(partial.client(token).exportMyData({}));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toMatch(/payments service is unavailable/);
      expect(Date.now() - started).toBeLessThan(4_000);
    } finally {
      await partial.close();
      await slow.server.close(500);
    }
  });

  it("fails with UNAVAILABLE naming auth when no service token can be had", async () => {
    const partial = await startTestUsers({
      sources: [{ name: "payments", url: payments.server.url }],
      serviceTokens: {
        token: () => Promise.reject(new Error("auth unreachable")),
        invalidate: () => undefined,
      },
      tokens,
    });
    try {
      const { token } = await partial.aRegisteredUser();
      const error = await rpcError(partial.client(token).exportMyData({}));
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toMatch(/auth service/);
    } finally {
      await partial.close();
    }
  });
});
