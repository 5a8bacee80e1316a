// Demo data for a freshly started local platform, created through the gateway's public REST API
// (the way a client would) so it also proves the whole path works. DEV ONLY credentials.

export const DEMO_ACCOUNT = {
  email: "demo@example.com",
  password: "zero-demo-password",
  firstName: "Demo",
  lastName: "User",
} as const;

/** Registers the demo account; an account that already exists (409) is fine. Returns a problem, if any. */
export async function seedDemoData(gatewayUrl: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${gatewayUrl}/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(DEMO_ACCOUNT),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await response.text();
    if (response.status === 201 || response.status === 200 || response.status === 409) return undefined;
    return `registering the demo account answered ${response.status}: ${body.slice(0, 300)}`;
  } catch (error) {
    return `registering the demo account failed: ${String(error)}`;
  }
}
