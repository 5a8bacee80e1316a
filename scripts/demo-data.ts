import type { LocalSecrets } from "./local-secrets.js";

// Demo data for a freshly started local platform, created through the gateway's public REST API
// (the way a client would) so it also proves the whole path works. DEV ONLY credentials.

export const DEMO_ACCOUNT = {
  email: "demo@example.com",
  password: "zero-demo-password",
  firstName: "Demo",
  lastName: "User",
} as const;

// The demo admin cannot come from a public endpoint: auth creates it at start-up from
// AUTH_BOOTSTRAP_ADMIN_* (scripts/platform.ts), with a password generated once into .local/secrets.env.
export const DEMO_ADMIN_EMAIL = "admin@example.com";
export const DEMO_ADMIN_PASSWORD_SECRET = "AUTH_DEMO_ADMIN_PASSWORD";

/** Registers the demo account; an account that already exists (409) is fine. Returns a problem, if any. */
export async function seedDemoData(
  gatewayUrl: string,
  secret: LocalSecrets["secret"],
): Promise<string | undefined> {
  try {
    const response = await fetch(`${gatewayUrl}/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(DEMO_ACCOUNT),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await response.text();
    if (response.status === 201 || response.status === 200 || response.status === 409)
      return await announceDemoAdmin(gatewayUrl, secret);
    return `registering the demo account answered ${response.status}: ${body.slice(0, 300)}`;
  } catch (error) {
    return `registering the demo account failed: ${String(error)}`;
  }
}

/** Prints the demo admin's credentials once a login with them works (the same secrets file as the plan). */
async function announceDemoAdmin(
  gatewayUrl: string,
  secret: LocalSecrets["secret"],
): Promise<string | undefined> {
  const password = secret(DEMO_ADMIN_PASSWORD_SECRET, 18);
  const response = await fetch(`${gatewayUrl}/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: DEMO_ADMIN_EMAIL, password }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok)
    return `signing in as the demo admin answered ${response.status}: ${(await response.text()).slice(0, 300)}`;
  process.stdout.write(`[zero] Demo admin (DEV ONLY): ${DEMO_ADMIN_EMAIL} / ${password}\n`);
  return undefined;
}
