import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DomainError } from "../src/errors.js";
import { startServer, type Server } from "../src/server.js";
import { createServiceTokenSource, serviceAuthInterceptor } from "../src/service-identity.js";
import { echoRoutes } from "./fixtures/echo-service.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer, type TestIssuer } from "./fixtures/tokens.js";

// A stand-in for auth's ServiceIdentityService (auth's own tests cover the real one end to end):
// it checks one client's secret and signs service tokens with the test issuer's key.

let issuer: TestIssuer;
let authLike: Server;
let echo: Server;
let issued = 0;
let failNext = false;
const logs = captureLogs();
const SECRET = "a-service-secret-of-enough-entropy";

beforeAll(async () => {
  issuer = await createTestIssuer();
  authLike = await startServer({
    name: "auth-like",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [ServiceIdentityService],
    routes: (router) =>
      router.service(ServiceIdentityService, {
        async issueServiceToken(req) {
          if (failNext) {
            failNext = false;
            throw new DomainError("unavailable", "auth is restarting");
          }
          if (req.clientId !== "payments" || req.clientSecret !== SECRET) {
            throw new DomainError("unauthenticated", "invalid client credentials");
          }
          issued++;
          const accessToken = await issuer.token(`service:${req.clientId}`, ["service"], { kind: "service" });
          return { accessToken, tokenType: "Bearer", expiresIn: 300 };
        },
      }),
  });
  echo = await startServer({
    name: "echo",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [EchoService],
    routes: echoRoutes,
    verifier: issuer.verifier,
  });
});

afterAll(async () => {
  await echo?.close(1000);
  await authLike?.close(1000);
});

beforeEach(() => {
  issued = 0;
  failNext = false;
});

describe("the service-credentials access level", () => {
  it("needs no bearer token and ignores one (the request's credentials are checked by the handler)", async () => {
    const client = createClient(
      ServiceIdentityService,
      createGrpcTransport({
        baseUrl: authLike.url,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", "Bearer not-a-token");
            return next(req);
          },
        ],
      }),
    );
    const res = await client.issueServiceToken({ clientId: "payments", clientSecret: SECRET });
    expect(res.accessToken.split(".")).toHaveLength(3);
  });
});

describe("createServiceTokenSource", () => {
  it("fetches once and reuses the token; concurrent callers share the one request", async () => {
    const source = createServiceTokenSource({
      authUrl: authLike.url,
      clientId: "payments",
      clientSecret: SECRET,
    });
    const tokens = await Promise.all(Array.from({ length: 10 }, () => source.token()));
    expect(new Set(tokens).size).toBe(1);
    expect(await source.token()).toBe(tokens[0]);
    expect(issued).toBe(1);
  });

  it("renews a minute before expiry, and keeps the old token when renewal fails while it is still valid", async () => {
    let now = 1_000_000;
    const source = createServiceTokenSource({
      authUrl: authLike.url,
      clientId: "payments",
      clientSecret: SECRET,
      now: () => now,
    });
    const first = await source.token();
    now += 239_000; // 4 min − 1 s: still fresh
    expect(await source.token()).toBe(first);
    expect(issued).toBe(1);
    now += 2_000; // inside the last minute: renewed
    const second = await source.token();
    expect(issued).toBe(2);
    now += 241_000;
    failNext = true; // renewal fails, the current token has ~58 s left
    expect(await source.token()).toBe(second);
    now += 120_000; // expired, and auth still fails: nothing valid to give
    failNext = true;
    const error = await source.token().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/auth is restarting/);
  });

  it("turns refused credentials into `unavailable` naming the client", async () => {
    const source = createServiceTokenSource({
      authUrl: authLike.url,
      clientId: "payments",
      clientSecret: "wrong",
    });
    const error = await source.token().catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).rawMessage).toMatch(
      /service token for "payments".*invalid client credentials/,
    );
    expect((error as ConnectError).rawMessage).not.toContain("wrong");
  });

  it("refuses to be created without credentials", () => {
    expect(() =>
      createServiceTokenSource({ authUrl: authLike.url, clientId: "payments", clientSecret: "" }),
    ).toThrow(/clientSecret/);
  });
});

describe("serviceAuthInterceptor", () => {
  it("lets a client call INTERNAL methods as the service, over Connect and gRPC", async () => {
    const source = createServiceTokenSource({
      authUrl: authLike.url,
      clientId: "payments",
      clientSecret: SECRET,
    });
    for (const transport of [
      createConnectTransport({
        baseUrl: echo.url,
        httpVersion: "1.1",
        interceptors: [serviceAuthInterceptor(source)],
      }),
      createGrpcTransport({ baseUrl: echo.url, interceptors: [serviceAuthInterceptor(source)] }),
    ]) {
      const client = createClient(EchoService, transport);
      await expect(client.internalEcho({ message: "hi" })).resolves.toMatchObject({ message: "hi" });
      // The same token is a service principal, not a user.
      await expect(client.whoAmI({})).resolves.toMatchObject({
        subject: "service:payments",
        roles: ["service"],
      });
    }
    expect(issued).toBe(1);
  });

  it("drops a token the callee refuses, so the next call fetches a fresh one", async () => {
    let calls = 0;
    const stale = {
      token: () => {
        calls++;
        return Promise.resolve(
          calls === 1 ? "not.a.token" : issuer.token("service:payments", ["service"], { kind: "service" }),
        );
      },
      invalidated: 0,
      invalidate() {
        this.invalidated++;
      },
    };
    const client = createClient(
      EchoService,
      createConnectTransport({
        baseUrl: echo.url,
        httpVersion: "1.1",
        interceptors: [serviceAuthInterceptor(stale)],
      }),
    );
    const first = await client.internalEcho({ message: "x" }).catch((e: unknown) => ConnectError.from(e));
    expect((first as ConnectError).code).toBe(Code.Unauthenticated);
    expect(stale.invalidated).toBe(1);
    await expect(client.internalEcho({ message: "y" })).resolves.toMatchObject({ message: "y" });
  });
});
