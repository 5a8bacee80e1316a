import { ConfigError, envReader } from "@zero/kit/config";

export type PaymentsConfig = ReturnType<typeof loadConfig>;

const MIN_SECRET_LENGTH = 16;

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const problems: string[] = [];
  const c = {
    // The interface to listen on; the dev platform binds loopback (only the gateway is public).
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 9006, { min: 0, max: 65535 }),
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_payments"),
    natsUrl: e.url("NATS_URL", "nats://127.0.0.1:4222"),
    logLevel: e.string("LOG_LEVEL", "info"),
    // Access tokens are verified locally against auth's published keys.
    authUrl: e.url("AUTH_URL", "http://127.0.0.1:9001"),
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
    // The provider's webhook signing secrets: the current one first, then those still accepted
    // during a rotation. No default: a default secret would be a published one.
    webhookSecrets: e.list("PAYMENTS_WEBHOOK_SECRETS", []),
    // Where the simulated provider delivers its webhooks; default: this service itself.
    providerWebhookUrl: e.optional("PAYMENTS_PROVIDER_WEBHOOK_URL"),
    // How long the simulated provider takes to settle an asynchronous payment.
    settleDelayMs: e.int("PAYMENTS_SETTLE_DELAY_MS", 2_000, { min: 0, max: 600_000 }),
    idempotencyWaitMs: e.int("PAYMENTS_IDEMPOTENCY_WAIT_MS", 10_000, { min: 0, max: 120_000 }),
    idempotencyLeaseMs: e.int("PAYMENTS_IDEMPOTENCY_LEASE_MS", 30_000, { min: 1_000, max: 600_000 }),
    // The reconciliation sweep looks up payments `processing` and untouched for this long. It must
    // exceed the longest a ProcessPayment can take between its two commits (the provider call with
    // its timeout): a younger payment may still be in flight, and a charge that has not reached the
    // provider yet would read as "never charged" and fail the payment.
    reconcileAfterMs: e.int("PAYMENTS_RECONCILE_AFTER_MS", 120_000, { min: 30_000, max: 86_400_000 }),
    reconcileIntervalMs: e.int("PAYMENTS_RECONCILE_INTERVAL_MS", 60_000, { min: 1_000, max: 3_600_000 }),
  };
  if (c.webhookSecrets.length === 0) {
    problems.push(
      "PAYMENTS_WEBHOOK_SECRETS is required (the provider's webhook signing secret(s), comma-separated, current first; e.g. openssl rand -hex 32) but is not set",
    );
  } else if (c.webhookSecrets.some((s) => s.length < MIN_SECRET_LENGTH)) {
    // Never echo the value: it is a secret.
    problems.push(`PAYMENTS_WEBHOOK_SECRETS: every secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  try {
    e.done();
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError([...error.problems, ...problems]);
    throw error;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...c, webhookSecrets: Object.freeze([...c.webhookSecrets]) });
}

/** What `main.ts migrate` needs: the database only. */
export function loadMigrationConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_payments"),
    logLevel: e.string("LOG_LEVEL", "info"),
  };
  e.done();
  return Object.freeze(c);
}
