import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Code, type Interceptor } from "@connectrpc/connect";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEchoServer } from "@zero/echo/echo-server";
import { startGateway, type Gateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { createLogger } from "@zero/kit/log";
import { createTokenVerifier } from "@zero/kit/principal";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { renderServiceMap } from "../src/service-map-source.js";
import { createZeroClient, zeroServices } from "../src/zero-client.js";

// The typed client against a real gateway in front of the diagnostic echo service.

const logger = createLogger("client-test", { level: "silent" });
let echo: Server;
let gateway: Gateway;
let sign: (sub: string) => Promise<string>;

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwk = { ...(await exportJWK(publicKey)), kid: "test", alg: "EdDSA", use: "sig" };
  const verifier = createTokenVerifier({
    issuer: "zero-auth",
    audience: "zero",
    getJwks: () => Promise.resolve({ keys: [jwk] }),
  });
  sign = (sub) =>
    new SignJWT({ roles: ["customer"] })
      .setProtectedHeader({ alg: "EdDSA", kid: "test" })
      .setSubject(sub)
      .setIssuer("zero-auth")
      .setAudience("zero")
      .setExpirationTime("5m")
      .sign(privateKey);
  echo = await startEchoServer({ logger, verifier });
  gateway = await startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

describe("createZeroClient", () => {
  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    it(`calls through the gateway with the ${protocol} protocol, attaching the token`, async () => {
      const token = await sign(`user-${protocol}`);
      const zero = createZeroClient({ baseUrl: gateway.url, token, protocol });
      expect((await zero.echo.echo({ message: protocol })).message).toBe(protocol);
      expect(await zero.echo.whoAmI({})).toMatchObject({ subject: `user-${protocol}` });
    });
  }

  it("asks an async token getter before every call, so a refreshed token is used", async () => {
    let current = await sign("first");
    const zero = createZeroClient({ baseUrl: gateway.url, token: () => Promise.resolve(current) });
    expect((await zero.echo.whoAmI({})).subject).toBe("first");
    current = await sign("second");
    expect((await zero.echo.whoAmI({})).subject).toBe("second");
  });

  it("sends no token when there is none, and the gateway says what is missing", async () => {
    const zero = createZeroClient({ baseUrl: gateway.url, token: () => undefined });
    await expect(zero.echo.whoAmI({})).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("runs the caller's interceptors, and serves any descriptor through the same transport", async () => {
    const seen: string[] = [];
    const record: Interceptor = (next) => (req) => {
      seen.push(`${req.method.name}:${req.header.get("authorization")?.slice(0, 7) ?? "-"}`);
      return next(req);
    };
    const zero = createZeroClient({ baseUrl: gateway.url, token: await sign("u"), interceptors: [record] });
    await zero.client(EchoService).echo({ message: "x" });
    expect(seen).toEqual(["Echo:Bearer "]);
  });

  it("has a typed client for every service the gateway routes (generated from its list)", () => {
    const source = readFileSync(fileURLToPath(new URL("../src/public-services.ts", import.meta.url)), "utf8");
    expect(source, "run `pnpm --filter @zero/client generate` after changing the gateway's list").toBe(
      renderServiceMap(publicServices),
    );
    expect(Object.values(zeroServices).map((s) => s.typeName)).toEqual(publicServices.map((s) => s.typeName));
    const zero = createZeroClient({ baseUrl: gateway.url });
    for (const key of Object.keys(zeroServices))
      expect(typeof zero[key as keyof typeof zeroServices]).toBe("object");
  });
});
