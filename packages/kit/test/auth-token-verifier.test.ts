import { createConnectTransport } from "@connectrpc/connect-node";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { freePort } from "@zero/testkit/ports";
import { createTokenIssuer, type TokenIssuer } from "@zero/testkit/token-issuer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthTokenVerifier } from "../src/auth-token-verifier.js";
import { createLogger } from "../src/log.js";
import { startServer, type Server } from "../src/server.js";

// The verifier of every service but auth, against a stand-in auth serving only GetJwks over a real
// connection: the keys come from the RPC, once, and a stopped auth is `unavailable`, not a crash.

let issuer: TokenIssuer;
let auth: Server;
let jwksCalls = 0;

beforeAll(async () => {
  issuer = await createTokenIssuer();
  auth = await startServer({
    name: "auth-stand-in",
    host: "127.0.0.1",
    port: 0,
    logger: createLogger("auth-stand-in", { level: "silent" }),
    services: [AuthService],
    verifier: issuer.verifier,
    routes: (router) =>
      router.service(AuthService, {
        getJwks() {
          jwksCalls++;
          return Promise.resolve({ keys: issuer.jwks.keys.map((k) => ({ ...k }) as Record<string, string>) });
        },
      }),
  });
});

afterAll(async () => {
  await auth?.close(1000);
});

describe("createAuthTokenVerifier", () => {
  it("verifies tokens with the keys auth publishes, fetching them once", async () => {
    const verifier = createAuthTokenVerifier({
      authUrl: auth.url,
      issuer: issuer.issuer,
      audience: issuer.audience,
    });
    const before = jwksCalls;
    expect(await verifier.verify(await issuer.user("user-1"))).toEqual({
      subject: "user-1",
      roles: ["customer"],
      kind: "user",
    });
    expect(await verifier.verify(await issuer.service("orders"))).toMatchObject({ kind: "service" });
    expect(jwksCalls - before).toBe(1);
    // Verified tokens are remembered: a repeated token answers the very same principal.
    const token = await issuer.user("user-1");
    const principal = await verifier.verify(token);
    expect(await verifier.verify(token)).toBe(principal);
    await expect(verifier.verify(await (await createTokenIssuer()).user("user-1"))).rejects.toThrow(
      /unknown key/,
    );
  });

  it("uses the transport it is given", async () => {
    const verifier = createAuthTokenVerifier({
      transport: createConnectTransport({ baseUrl: auth.url, httpVersion: "2" }),
      issuer: issuer.issuer,
      audience: issuer.audience,
    });
    expect(await verifier.verify(await issuer.user("user-2"))).toMatchObject({ subject: "user-2" });
  });

  it("answers unavailable while auth cannot be reached", async () => {
    const verifier = createAuthTokenVerifier({
      authUrl: `http://127.0.0.1:${await freePort()}`,
      issuer: issuer.issuer,
      audience: issuer.audience,
    });
    await expect(verifier.verify(await issuer.user("user-3"))).rejects.toMatchObject({
      code: "unavailable",
      reason: "JWKS_UNAVAILABLE",
    });
  });
});
