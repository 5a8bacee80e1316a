import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson, startPlatform, type ApiError, type TestPlatform } from "./platform.js";

interface UserJson {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: string[];
  createTime: string;
}
interface LoginJson {
  accessToken: string;
  tokenType: string;
  expiresIn: number;
  refreshToken: string;
  refreshExpiresIn: number;
  token: string;
  user: UserJson;
}
interface JwksJson {
  keys: { kty: string; crv: string; x: string; kid: string; alg: string; use: string }[];
}

let platform: TestPlatform;
beforeAll(async () => {
  platform = await startPlatform();
});
afterAll(async () => {
  await platform?.close();
});

describe("register and login through the gateway (REST)", () => {
  test("POST /v1/auth/register answers 201 with the new user", async () => {
    const reg = aRegistration({ email: "  Mixed.Case@Example.COM " });
    const res = await postJson(`${platform.url}/v1/auth/register`, reg);
    expect(res.status).toBe(201);
    const { user } = res.body as { user: UserJson };
    expect(user.email).toBe("mixed.case@example.com");
    expect(user.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(user.roles).toEqual(["customer"]);
    expect(res.body).not.toHaveProperty("user.password");
  });

  test("the legacy POST /auth/register answers 201 too", async () => {
    const res = await postJson(`${platform.url}/auth/register`, aRegistration());
    expect(res.status).toBe(201);
    expect((res.body as { user: UserJson }).user.id).toBeTruthy();
  });

  test("login returns access and refresh tokens; the access token verifies against the published JWKS", async () => {
    const reg = aRegistration();
    expect((await postJson(`${platform.url}/v1/auth/register`, reg)).status).toBe(201);

    const res = await postJson(`${platform.url}/v1/auth/login`, { email: reg.email, password: reg.password });
    expect(res.status).toBe(200);
    const login = res.body as LoginJson;
    expect(login.tokenType).toBe("Bearer");
    expect(login.expiresIn).toBe(900);
    expect(login.refreshToken.length).toBeGreaterThanOrEqual(40);
    expect(login.token).toBe(login.accessToken);

    for (const path of ["/v1/auth/jwks", "/.well-known/jwks.json"]) {
      const jwksRes = await fetch(`${platform.url}${path}`);
      expect(jwksRes.status).toBe(200);
      const jwks = (await jwksRes.json()) as JwksJson;
      expect(jwks.keys.length).toBeGreaterThanOrEqual(1);
      const { payload, protectedHeader } = await jwtVerify(login.accessToken, createLocalJWKSet(jwks), {
        algorithms: ["EdDSA"],
        issuer: "zero-auth",
        audience: "zero",
      });
      expect(protectedHeader.kid).toBe(jwks.keys[0]?.kid);
      expect(payload.sub).toBe(login.user.id);
      expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(900);
    }
    expect(decodeProtectedHeader(login.accessToken).alg).toBe("EdDSA");
  });

  test("the legacy POST /auth/login answers with the seed's `token` field", async () => {
    const reg = aRegistration();
    await postJson(`${platform.url}/auth/register`, reg);
    const res = await postJson(`${platform.url}/auth/login`, { email: reg.email, password: reg.password });
    expect(res.status).toBe(200);
    expect((res.body as LoginJson).token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  test("a duplicate email (in any case) gets 409 ALREADY_EXISTS", async () => {
    const reg = aRegistration();
    expect((await postJson(`${platform.url}/v1/auth/register`, reg)).status).toBe(201);
    const dup = await postJson(`${platform.url}/v1/auth/register`, {
      ...reg,
      email: String(reg.email).toUpperCase(),
    });
    expect(dup.status).toBe(409);
    expect((dup.body as ApiError).error.status).toBe("ALREADY_EXISTS");
  });

  test("a wrong password and an unknown email get the same 401", async () => {
    const reg = aRegistration();
    await postJson(`${platform.url}/v1/auth/register`, reg);
    const wrong = await postJson(`${platform.url}/v1/auth/login`, {
      email: reg.email,
      password: "not the password!",
    });
    const unknown = await postJson(`${platform.url}/v1/auth/login`, {
      email: "nobody-at-all@example.com",
      password: "not the password!",
    });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual(unknown.body);
    expect((wrong.body as ApiError).error.status).toBe("UNAUTHENTICATED");
  });
});
