import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { aRegistration, postJson, startPlatform, type ApiError, type TestPlatform } from "./platform.js";

// Access tokens are stateless for their 15 minutes; a signed-out one must still stop working at
// once, at every service — the gateway checks auth's revocation list on each request.

let platform: TestPlatform;
beforeAll(async () => {
  platform = await startPlatform();
});
afterAll(async () => {
  await platform?.close();
});

const whoAmI = (token: string) =>
  fetch(`${platform.url}/v1/echo/whoami`, { headers: { authorization: `Bearer ${token}` } });

describe("a token after logout", () => {
  test("is refused at the edge for a service other than auth, and by auth itself", async () => {
    const reg = aRegistration();
    expect((await postJson(`${platform.url}/v1/auth/register`, reg)).status).toBe(201);
    const login = await postJson(`${platform.url}/v1/auth/login`, {
      email: reg.email,
      password: reg.password,
    });
    const token = (login.body as { accessToken: string }).accessToken;

    const before = await whoAmI(token);
    expect(before.status).toBe(200);
    expect(((await before.json()) as { subject: string }).subject).toBeTruthy();

    const logout = await postJson(`${platform.url}/v1/auth/logout`, {}, { authorization: `Bearer ${token}` });
    expect(logout.status).toBe(200);

    const after = await whoAmI(token);
    expect(after.status).toBe(401);
    const { error } = (await after.json()) as ApiError;
    expect(JSON.stringify(error.details)).toContain("TOKEN_REVOKED");

    const profile = await fetch(`${platform.url}/auth/profile`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(profile.status).toBe(401);
  });
});
