import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import { startServer, type Server } from "@zero/kit/server";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { TEST_AUDIENCE, TEST_ISSUER, createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// Without an explicit verifier the gateway verifies tokens against auth's GetJwks, fetched over
// its own connection to auth. auth is played here by a server that publishes the test key (the
// real auth service is exercised end to end in e2e/).
const logger = createLogger("gateway-test", { level: "silent" });
let tokens: TestTokens;
let auth: Server;
let echo: Server;
let gateway: Gateway;
let jwksCalls = 0;

beforeAll(async () => {
  tokens = await createTestTokens();
  auth = await startServer({
    name: "auth-jwks",
    port: 0,
    host: "127.0.0.1",
    logger,
    // auth's own USER methods need one to start; the gateway under test does not use it.
    verifier: tokens.verifier,
    services: [AuthService],
    routes(router) {
      router.service(AuthService, {
        register() {
          throw new ConnectError("not in this test", Code.Unimplemented);
        },
        login() {
          throw new ConnectError("not in this test", Code.Unimplemented);
        },
        getJwks() {
          jwksCalls++;
          return {
            keys: tokens.jwks.keys.map((k) => ({
              kty: k.kty,
              crv: k.crv,
              x: k.x,
              kid: k.kid,
              alg: k.alg,
              use: k.use,
            })),
          };
        },
      });
    },
  });
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    services: [AuthService, EchoService],
    upstreamUrls: { auth: auth.url, testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    tokenIssuer: TEST_ISSUER,
    tokenAudience: TEST_AUDIENCE,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
  await auth?.close(1000);
});

describe("the default token verifier", () => {
  it("verifies with the keys auth publishes, fetching them once", async () => {
    const token = await tokens.sign({ sub: "user-42" });
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${gateway.url}/v1/echo/whoami`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ subject: "user-42", roles: ["customer"] });
    }
    expect(jwksCalls).toBe(1);
    const forged = `${token.slice(0, -4)}AAAA`;
    expect(
      (await fetch(`${gateway.url}/v1/echo/whoami`, { headers: { authorization: `Bearer ${forged}` } }))
        .status,
    ).toBe(401);
  });

  it("routes auth's REST bindings, legacy ones included", async () => {
    const response = await fetch(`${gateway.url}/.well-known/jwks.json`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { keys: { kid: string; kty: string }[] };
    expect(body.keys[0]).toMatchObject({ kid: tokens.jwks.keys[0]?.kid, kty: "OKP" });
    const health = await fetch(`${gateway.url}/health`);
    expect(await health.json()).toEqual({
      status: "SERVING",
      services: { auth: "SERVING", testing: "SERVING" },
    });
  });
});
