import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Gateway } from "@zero/gateway/gateway-server";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anAddress,
  aUserId,
  Code,
  createClientFactory,
  rpcError,
  startTestGateway,
  startTestUsers,
  type ClientKind,
  type TestUsers,
} from "./fixtures.js";

// One user must never read or change another's profile or addresses, by any protocol, directly or
// through the gateway. Another user's id answers exactly like an id that does not exist
// (NOT_FOUND), so guessing ids reveals nothing.

let users: TestUsers;
let gateway: Gateway;
let owner: { userId: string; token: string };
let victim: { userId: string; token: string; addressId: string };
const nobody = aUserId();
const nowhere = aUserId();

beforeAll(async () => {
  users = await startTestUsers();
  gateway = await startTestGateway(users);
  owner = await users.aRegisteredUser({ firstName: "Owner" });
  const v = await users.aRegisteredUser({ firstName: "Victim", lastName: "Secret" });
  const { address } = await users
    .client(v.token)
    .createAddress({ userId: "me", address: anAddress({ line1: "Victim Street 1" }) });
  victim = { ...v, addressId: address!.id };
});

afterAll(async () => {
  await gateway?.close(2000);
  await users?.close();
});

/** What a NOT_FOUND says, with the id it names blanked, so answers for different ids compare. */
const shape = (error: { code: Code; rawMessage: string }, id: string) => ({
  code: error.code,
  message: error.rawMessage.replaceAll(id, "<id>"),
});

const routes: [string, ClientKind, () => string][] = [
  ["Connect, direct", "connect", () => users.server.url],
  ["gRPC, direct", "grpc", () => users.server.url],
  ["gRPC-Web, direct", "grpc-web", () => users.server.url],
  ["Connect, through the gateway", "connect", () => gateway.url],
  ["gRPC, through the gateway", "grpc", () => gateway.url],
  ["gRPC-Web, through the gateway", "grpc-web", () => gateway.url],
];

describe.each(routes)("another user's data by id guessing (%s)", (_, kind, baseUrl) => {
  const client = () => createClientFactory(baseUrl()).client(owner.token, kind);

  it("reads of another's profile and addresses answer NOT_FOUND, exactly as a non-existent id", async () => {
    const c = client();
    for (const call of [
      (id: string) => c.getProfile({ userId: id }),
      (id: string) => c.listAddresses({ userId: id }),
      (id: string) => c.getAddress({ userId: id, addressId: victim.addressId }),
    ]) {
      const theirs = await rpcError(call(victim.userId));
      const none = await rpcError(call(nobody));
      expect(theirs.code).toBe(Code.NotFound);
      expect(shape(theirs, victim.userId)).toEqual(shape(none, nobody));
    }
    // Their address id under my own user: scoped by owner, so the same as an unknown id.
    const mine = await rpcError(c.getAddress({ userId: "me", addressId: victim.addressId }));
    const unknown = await rpcError(c.getAddress({ userId: "me", addressId: nowhere }));
    expect(mine.code).toBe(Code.NotFound);
    expect(shape(mine, victim.addressId)).toEqual(shape(unknown, nowhere));
  });

  it("writes to another's profile and addresses answer NOT_FOUND and change nothing", async () => {
    const c = client();
    const attempts = [
      () => c.updateProfile({ userId: victim.userId, profile: { displayName: "pwned" } }),
      () => c.createAddress({ userId: victim.userId, address: anAddress({ line1: "Attacker Road" }) }),
      () =>
        c.updateAddress({ userId: victim.userId, addressId: victim.addressId, address: { line1: "pwned" } }),
      () => c.updateAddress({ userId: "me", addressId: victim.addressId, address: { line1: "pwned" } }),
      () => c.deleteAddress({ userId: victim.userId, addressId: victim.addressId }),
      () => c.deleteAddress({ userId: "me", addressId: victim.addressId }),
    ];
    for (const attempt of attempts) expect((await rpcError(attempt())).code).toBe(Code.NotFound);

    const self = users.client(victim.token);
    expect((await self.getProfile({ userId: "me" })).profile).toMatchObject({
      firstName: "Victim",
      displayName: "",
    });
    const { addresses } = await self.listAddresses({ userId: "me" });
    expect(addresses.map((a) => [a.id, a.line1])).toEqual([[victim.addressId, "Victim Street 1"]]);
  });

  it("refuses every call without a token (UNAUTHENTICATED)", async () => {
    const anonymous = createClientFactory(baseUrl()).client(undefined, kind);
    expect((await rpcError(anonymous.getProfile({ userId: "me" }))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(anonymous.listAddresses({ userId: victim.userId }))).code).toBe(
      Code.Unauthenticated,
    );
  });

  it("lets an admin read anyone's profile and addresses, never change them", async () => {
    const admin = createClientFactory(baseUrl()).client(
      await users.tokens.user(aUserId(), ["customer", "admin"]),
      kind,
    );
    expect((await admin.getProfile({ userId: victim.userId })).profile?.firstName).toBe("Victim");
    expect((await admin.listAddresses({ userId: victim.userId })).addresses).toHaveLength(1);
    expect((await rpcError(admin.getProfile({ userId: nobody }))).code).toBe(Code.NotFound);
    const write = await rpcError(
      admin.updateProfile({ userId: victim.userId, profile: { displayName: "admin was here" } }),
    );
    expect(write.code).toBe(Code.PermissionDenied);
  });
});

describe("REST through the gateway", () => {
  const rest = (method: string, path: string, body?: unknown) =>
    fetch(`${gateway.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${owner.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it("answers 404 for another user's resources, the same as for ids that do not exist", async () => {
    const cases: [string, (id: string) => string, unknown?][] = [
      ["GET", (id) => `/v1/users/${id}/profile`],
      ["PATCH", (id) => `/v1/users/${id}/profile`, { displayName: "pwned" }],
      ["GET", (id) => `/v1/users/${id}/addresses`],
      [
        "POST",
        (id) => `/v1/users/${id}/addresses`,
        { recipientName: "x", line1: "y", city: "z", countryCode: "DE" },
      ],
      ["GET", (id) => `/v1/users/${id}/addresses/${victim.addressId}`],
      ["PATCH", (id) => `/v1/users/${id}/addresses/${victim.addressId}`, { line1: "pwned" }],
      ["DELETE", (id) => `/v1/users/${id}/addresses/${victim.addressId}`],
    ];
    for (const [method, path, body] of cases) {
      const theirs = await rest(method, path(victim.userId), body);
      const none = await rest(method, path(nobody), body);
      expect([method, path("…"), theirs.status]).toEqual([method, path("…"), 404]);
      const [a, b] = (await Promise.all([theirs.json(), none.json()])) as {
        error: { status: string; message: string };
      }[];
      expect(a!.error.status).toBe("NOT_FOUND");
      expect(a!.error.message.replaceAll(victim.userId, "<id>")).toBe(
        b!.error.message.replaceAll(nobody, "<id>"),
      );
    }
    for (const method of ["GET", "PATCH", "DELETE"]) {
      const res = await rest(
        method,
        `/v1/users/me/addresses/${victim.addressId}`,
        method === "PATCH" ? { line1: "pwned" } : undefined,
      );
      expect([method, res.status]).toEqual([method, 404]);
    }
    const { addresses } = await users.client(victim.token).listAddresses({ userId: "me" });
    expect(addresses.map((a) => a.line1)).toEqual(["Victim Street 1"]);
  });
});

describe("PersonalDataService (INTERNAL)", () => {
  const personalData = (baseUrl: string, token: string) =>
    createClient(
      PersonalDataService,
      createGrpcTransport({
        baseUrl,
        interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))],
      }),
    );

  it("answers a service token with the user's data", async () => {
    const res = await personalData(users.server.url, await users.tokens.service("auth")).exportPersonalData({
      userId: victim.userId,
    });
    expect(res.service).toBe("users");
    expect(JSON.stringify(res.data)).toContain("Victim Street 1");
  });

  it("refuses a user's token, even for their own id", async () => {
    const error = await rpcError(
      personalData(users.server.url, victim.token).exportPersonalData({ userId: victim.userId }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("is never reachable through the gateway, even with a service token", async () => {
    const error = await rpcError(
      personalData(gateway.url, await users.tokens.service("auth")).exportPersonalData({
        userId: victim.userId,
      }),
    );
    expect([Code.PermissionDenied, Code.NotFound, Code.Unimplemented]).toContain(error.code);
    const res = await fetch(`${gateway.url}/zero.privacy.v1.PersonalDataService/ExportPersonalData`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${await users.tokens.service("auth")}`,
      },
      body: JSON.stringify({ userId: victim.userId }),
    });
    expect(res.ok).toBe(false);
    expect(await res.text()).not.toContain("Victim");
  });
});

describe("a service token on the user API", () => {
  it("has no `me`: NOT_FOUND, and another user's id stays NOT_FOUND", async () => {
    const service = users.client(await users.tokens.service("payments"));
    expect((await rpcError(service.getProfile({ userId: "me" }))).code).toBe(Code.NotFound);
    expect((await rpcError(service.getProfile({ userId: victim.userId }))).code).toBe(Code.NotFound);
  });
});
