import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createServiceTokenSource, serviceAuthInterceptor } from "@zero/kit/service-identity";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { createLocalJWKSet, jwtVerify, type JWK } from "jose";
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcError, startTestAuth, type TestAuth } from "./fixtures.js";

// The contract other services rely on: client credentials → a 5-minute EdDSA service token, which
// the kit's INTERNAL policy accepts and nothing else issues.

const secret = randomBytes(32).toString("base64");
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
let auth: TestAuth;

beforeAll(async () => {
  auth = await startTestAuth({
    AUTH_SERVICE_CLIENTS: `payments:${sha256(secret)},users:${sha256("another secret of the users service")}`,
  });
});

afterAll(async () => {
  await auth?.close();
});

describe("IssueServiceToken", () => {
  it("answers a 5-minute EdDSA token for service:<name>, verifiable with the JWKS", async () => {
    const res = await auth
      .anonymous()
      .serviceIdentity.issueServiceToken({ clientId: "payments", clientSecret: secret });
    expect(res).toMatchObject({ tokenType: "Bearer", expiresIn: 300 });
    const keys: JWK[] = (await auth.client.getJwks({})).keys.map((k) => ({ ...k }));
    const { payload, protectedHeader } = await jwtVerify(res.accessToken, createLocalJWKSet({ keys }), {
      issuer: "zero-auth",
      audience: "zero",
      algorithms: ["EdDSA"],
    });
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload).toMatchObject({ sub: "service:payments", kind: "service", roles: ["service"] });
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it.each([
    ["a wrong secret", "payments", "not the secret"],
    ["an unknown client", "nobody", secret],
    ["the hash instead of the secret", "payments", sha256(secret)],
  ])("refuses %s with the same unauthenticated answer", async (_, clientId, clientSecret) => {
    const error = await rpcError(
      auth.anonymous().serviceIdentity.issueServiceToken({ clientId, clientSecret }),
    );
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toBe("invalid client credentials");
  });

  it("names the missing fields", async () => {
    const error = await rpcError(
      auth.anonymous().serviceIdentity.issueServiceToken({ clientId: "", clientSecret: "" }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/client_id.*client_secret/);
  });

  it("throttles a client id after repeated failures, even for the right secret", async () => {
    const clients = auth.anonymous({ "x-forwarded-for": "203.0.113.9" }).serviceIdentity;
    const codes: Code[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push(
        (await rpcError(clients.issueServiceToken({ clientId: "users", clientSecret: `guess ${i}` }))).code,
      );
    }
    expect(codes.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => Code.Unauthenticated));
    expect(codes.at(-1)).toBe(Code.ResourceExhausted);
    const locked = await rpcError(
      clients.issueServiceToken({ clientId: "users", clientSecret: "another secret of the users service" }),
    );
    expect(locked.code).toBe(Code.ResourceExhausted);
  });
});

describe("the kit's token source against auth", () => {
  it("lets a service call an INTERNAL method (gRPC and Connect), and nobody else", async () => {
    const source = createServiceTokenSource({
      authUrl: auth.server.url,
      clientId: "payments",
      clientSecret: secret,
    });
    const { userId } = await auth.signUp();
    for (const transport of [
      createGrpcTransport({ baseUrl: auth.server.url, interceptors: [serviceAuthInterceptor(source)] }),
      createConnectTransport({
        baseUrl: auth.server.url,
        httpVersion: "1.1",
        interceptors: [serviceAuthInterceptor(source)],
      }),
    ]) {
      const res = await createClient(PersonalDataService, transport).exportPersonalData({ userId });
      expect(res.service).toBe("auth");
      expect(res.data).toMatchObject({ account: { id: userId } });
    }

    // A service token is no user: user RPCs refuse it cleanly.
    const asService = auth.as(await source.token());
    for (const call of [
      asService.sessions.listSessions({}),
      asService.auth.getMe({}),
      asService.auth.logout({}),
    ]) {
      expect((await rpcError(call)).code).toBe(Code.PermissionDenied);
    }

    const anonymous = await rpcError(auth.anonymous().personalData.exportPersonalData({ userId }));
    expect(anonymous.code).toBe(Code.Unauthenticated);
    const user = await auth.signUp();
    const asUser = await rpcError(auth.as(user.accessToken).personalData.exportPersonalData({ userId }));
    expect(asUser.code).toBe(Code.PermissionDenied);
    expect(ConnectError.from(asUser).rawMessage).toMatch(/reserved for Zero's own services/);
  });
});
