import { randomUUID } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import { createTokenVerifier, type TokenVerifier } from "@zero/kit/principal";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { TEST_AUDIENCE, TEST_ISSUER } from "./fixtures/tokens.js";

// The edge's authentication against forged and misused tokens. The gateway's verifier reads a
// JWKS that the test controls (auth's key rotation is played by swapping it); the echo service
// behind verifies the forwarded token again with the same keys.

const logger = createLogger("gateway-test", { level: "silent" });

interface SigningKey {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  jwk: JWK;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" } };
}

let published: { keys: JWK[] } = { keys: [] };
let jwksFetches = 0;
let edgeVerifications = 0;
let current: SigningKey;
let echo: Server;
let gateway: Gateway;

function sign(
  key: SigningKey,
  claims: { sub?: string; aud?: string; iss?: string; exp?: string | number; nbf?: string | number } = {},
): Promise<string> {
  const jwt = new SignJWT({ roles: ["customer"] })
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid })
    .setSubject(claims.sub ?? "user-1")
    .setIssuer(claims.iss ?? TEST_ISSUER)
    .setAudience(claims.aud ?? TEST_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? "5m");
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  return jwt.sign(key.privateKey);
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

function whoAmI(token: string | undefined) {
  return fetch(`${gateway.url}/v1/echo/whoami`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
}

beforeAll(async () => {
  current = await newKey();
  published = { keys: [current.jwk] };
  const jwksVerifier = (): TokenVerifier =>
    createTokenVerifier({
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      getJwks: () => {
        jwksFetches++;
        return Promise.resolve(published);
      },
      // Rotation is followed at once in the test; production keeps the default cool-down.
      refetchCooldownMs: 0,
    });
  const serviceVerifier = jwksVerifier();
  echo = await startEchoServer({ logger, verifier: serviceVerifier });
  const edge = jwksVerifier();
  gateway = await startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: {
      verify(token) {
        edgeVerifications++;
        return edge.verify(token);
      },
    },
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

describe("edge authentication", () => {
  it("accepts a valid token and forwards it: the service sees the same caller", async () => {
    const response = await whoAmI(await sign(current, { sub: "user-42" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ subject: "user-42", roles: ["customer"] });

    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    const token = await sign(current, { sub: "user-43" });
    const me = await client.whoAmI({}, { headers: { authorization: `Bearer ${token}` } });
    expect(me.subject).toBe("user-43");
  });

  it("verifies a token once at the edge, then serves it from the cache", async () => {
    const token = await sign(current, { sub: "cached-user" });
    const before = edgeVerifications;
    for (let i = 0; i < 5; i++) expect((await whoAmI(token)).status).toBe(200);
    expect(edgeVerifications - before).toBe(1);
  });

  const refusals: [string, () => Promise<string>][] = [
    ["signed by a key auth never published", async () => sign(await newKey())],
    ["expired", () => sign(current, { exp: Math.floor(Date.now() / 1000) - 60 })],
    ["not valid yet (nbf in the future)", () => sign(current, { nbf: "10m", exp: "20m" })],
    ["issued for another audience", () => sign(current, { aud: "someone-else" })],
    ["issued by another issuer", () => sign(current, { iss: "evil-auth" })],
    [
      'alg "none" (unsigned)',
      () =>
        Promise.resolve(
          `${b64({ alg: "none", kid: current.kid })}.${b64({ sub: "admin", iss: TEST_ISSUER, aud: TEST_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 })}.`,
        ),
    ],
    [
      "HS256 keyed with the public key (algorithm confusion)",
      () =>
        new SignJWT({ roles: ["admin"] })
          .setProtectedHeader({ alg: "HS256", kid: current.kid })
          .setSubject("admin")
          .setIssuer(TEST_ISSUER)
          .setAudience(TEST_AUDIENCE)
          .setExpirationTime("5m")
          .sign(Buffer.from(JSON.stringify(current.jwk))),
    ],
    ["garbage", () => Promise.resolve("not.a.token")],
  ];

  for (const [what, make] of refusals) {
    it(`refuses a token ${what} with 401 and an actionable message`, async () => {
      const response = await whoAmI(await make());
      expect(response.status).toBe(401);
      const body = (await response.json()) as { error: { status: string; message: string } };
      expect(body.error.status).toBe("UNAUTHENTICATED");
      expect(body.error.message).toMatch(/token|sign in/i);
    });
  }

  it("refuses the same forged token by Connect too", async () => {
    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const token = await sign(current, { aud: "someone-else" });
    await expect(client.whoAmI({}, { headers: { authorization: `Bearer ${token}` } })).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("follows a key rotation: tokens signed with the new key work once auth publishes it", async () => {
    const next = await newKey();
    const token = await sign(next, { sub: "rotated-user" });
    expect((await whoAmI(token)).status).toBe(401); // not published yet
    published = { keys: [current.jwk, next.jwk] };
    const fetchesBefore = jwksFetches;
    const response = await whoAmI(token);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ subject: "rotated-user" });
    expect(jwksFetches).toBeGreaterThan(fetchesBefore);
    current = next;
  });
});
