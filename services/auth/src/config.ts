import { ConfigError, envReader } from "@zero/kit/config";
import { availableParallelism } from "node:os";
import { OWASP_ARGON2 } from "./credentials/credentials.js";
import { KEY_ENCRYPTION_KEY_BYTES } from "./tokens/sealed-secret.js";

export type AuthConfig = ReturnType<typeof loadConfig>;

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const problems: string[] = [];
  const c = {
    // The interface to listen on; the dev platform binds loopback (only the gateway is public).
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 9001, { min: 0, max: 65535 }),
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_auth"),
    natsUrl: e.url("NATS_URL", "nats://127.0.0.1:4222"),
    redisUrl: e.url("REDIS_URL", "redis://127.0.0.1:6379"),
    logLevel: e.string("LOG_LEVEL", "info"),
    // No default, anywhere: a default key would be a published key.
    keyEncryptionKey: decodeKey(e.optional("AUTH_KEY_ENCRYPTION_KEY"), problems),
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
    accessTokenTtlSeconds: e.int("ACCESS_TOKEN_TTL_SECONDS", 900, { min: 60, max: 3600 }),
    refreshTokenTtlSeconds: e.int("REFRESH_TOKEN_TTL_SECONDS", 604_800, { min: 3600, max: 90 * 86_400 }),
    // A retry of a refresh whose answer was lost, within this many seconds, is not treated as reuse.
    refreshReuseGraceSeconds: e.int("AUTH_REFRESH_REUSE_GRACE_SECONDS", 15, { min: 0, max: 120 }),
    serviceTokenTtlSeconds: e.int("SERVICE_TOKEN_TTL_SECONDS", 300, { min: 60, max: 3600 }),
    // `name:sha256hex,…` — the services that may ask for service tokens and their secrets' hashes.
    serviceClients: parseServiceClients(e.list("AUTH_SERVICE_CLIENTS", []), problems),
    // Longer than any verifier caches the JWKS (kit: 10 min), so a new key is known before it signs.
    keyActivationDelaySeconds: e.int("AUTH_KEY_ACTIVATION_DELAY_SECONDS", 900, { min: 0, max: 7 * 86_400 }),
    emailVerificationTtlSeconds: e.int("AUTH_EMAIL_VERIFICATION_TTL_SECONDS", 3600, { min: 900, max: 3600 }),
    passwordResetTtlSeconds: e.int("AUTH_PASSWORD_RESET_TTL_SECONDS", 1800, { min: 900, max: 3600 }),
    // Where the links in the mails point (the code is appended as `?code=`); none: the mail has the code only.
    emailVerificationUrl: e.optional("AUTH_EMAIL_VERIFICATION_URL"),
    passwordResetUrl: e.optional("AUTH_PASSWORD_RESET_URL"),
    // The notifications service; unset, mails are logged as "would be sent" (without the code).
    notificationsUrl: optionalUrl(e.optional("NOTIFICATIONS_URL"), "NOTIFICATIONS_URL", problems),
    totpIssuer: e.string("AUTH_TOTP_ISSUER", "Zero"),
    // The first admin, created at start-up when no admin exists (never from a public endpoint).
    bootstrapAdmin: bootstrapAdmin(
      e.optional("AUTH_BOOTSTRAP_ADMIN_EMAIL"),
      e.optional("AUTH_BOOTSTRAP_ADMIN_PASSWORD"),
      problems,
    ),
    maintenanceIntervalSeconds: e.int("AUTH_MAINTENANCE_INTERVAL_SECONDS", 30, { min: 1, max: 3600 }),
    // The OWASP values are floors: raise them on faster hardware, never lower them.
    argon2: {
      memoryCost: e.int("AUTH_ARGON2_MEMORY_KIB", OWASP_ARGON2.memoryCost, {
        min: OWASP_ARGON2.memoryCost,
        max: 1_048_576,
      }),
      timeCost: e.int("AUTH_ARGON2_TIME_COST", OWASP_ARGON2.timeCost, {
        min: OWASP_ARGON2.timeCost,
        max: 20,
      }),
      parallelism: e.int("AUTH_ARGON2_PARALLELISM", OWASP_ARGON2.parallelism, {
        min: OWASP_ARGON2.parallelism,
        max: 16,
      }),
      // One core is left to everything else (event loop, Postgres client, the other RPCs): a login
      // flood then slows logins, not the platform. argon2 runs on libuv's pool (4 threads).
      maxConcurrent: e.int("AUTH_HASH_CONCURRENCY", defaultHashConcurrency(), { min: 1, max: 64 }),
      // ~40 ms per hash on 2 cores: 256 waiting is about 5 s of work, as long as a client should wait.
      maxQueued: e.int("AUTH_HASH_QUEUE", 256, { min: 0, max: 100_000 }),
    },
  };
  // The reader has no hook for a custom check, so the key's problems join its list here: the
  // operator still sees every problem in one message.
  try {
    e.done();
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError([...error.problems, ...problems]);
    throw error;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...c, argon2: Object.freeze(c.argon2) });
}

/** Each entry `name:sha256hex`; the secrets themselves never reach auth's configuration. */
function parseServiceClients(entries: string[], problems: string[]): ReadonlyMap<string, Buffer> {
  const clients = new Map<string, Buffer>();
  for (const entry of entries) {
    const match = /^([a-z][a-z0-9-]{0,62}):([0-9a-f]{64})$/i.exec(entry);
    if (!match?.[1] || !match[2]) {
      // The name only: the rest may be a secret pasted by mistake.
      problems.push(
        `AUTH_SERVICE_CLIENTS: entry "${entry.split(":", 1)[0]}" must be name:sha256hex (64 hex digits of SHA-256 of the service's secret)`,
      );
      continue;
    }
    clients.set(match[1].toLowerCase(), Buffer.from(match[2], "hex"));
  }
  return clients;
}

function bootstrapAdmin(
  email: string | undefined,
  password: string | undefined,
  problems: string[],
): { email: string; password: string } | undefined {
  if (email === undefined && password === undefined) return undefined;
  if (email === undefined || password === undefined) {
    problems.push(
      "AUTH_BOOTSTRAP_ADMIN_EMAIL and AUTH_BOOTSTRAP_ADMIN_PASSWORD go together: set both or neither",
    );
    return undefined;
  }
  return { email, password };
}

/** What `main.ts create-admin` needs: the database and the hashing parameters, no key secret. */
export function loadAdminCommandConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_auth"),
    logLevel: e.string("LOG_LEVEL", "info"),
    argon2: {
      memoryCost: e.int("AUTH_ARGON2_MEMORY_KIB", OWASP_ARGON2.memoryCost, { min: OWASP_ARGON2.memoryCost }),
      timeCost: e.int("AUTH_ARGON2_TIME_COST", OWASP_ARGON2.timeCost, { min: OWASP_ARGON2.timeCost }),
      parallelism: e.int("AUTH_ARGON2_PARALLELISM", OWASP_ARGON2.parallelism, {
        min: OWASP_ARGON2.parallelism,
      }),
      maxConcurrent: 1,
    },
    // Never a command-line argument: those are visible to every user of the machine (ps).
    password: e.optional("AUTH_ADMIN_PASSWORD"),
  };
  e.done();
  return Object.freeze(c);
}

/** What `main.ts migrate` needs: the database only (no signing-key secret for a schema change). */
export function loadMigrationConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_auth"),
    logLevel: e.string("LOG_LEVEL", "info"),
  };
  e.done();
  return Object.freeze(c);
}

function decodeKey(value: string | undefined, problems: string[]): Buffer {
  const hint = `${KEY_ENCRYPTION_KEY_BYTES} random bytes, base64 (openssl rand -base64 ${KEY_ENCRYPTION_KEY_BYTES})`;
  if (value === undefined) {
    problems.push(`AUTH_KEY_ENCRYPTION_KEY is required (${hint}) but is not set`);
    return Buffer.alloc(0);
  }
  // Never echo the value: it is the key that protects the signing keys.
  const key = /^[A-Za-z0-9+/_-]+={0,2}$/.test(value) ? Buffer.from(value, "base64") : Buffer.alloc(0);
  if (key.length !== KEY_ENCRYPTION_KEY_BYTES) {
    problems.push(
      `AUTH_KEY_ENCRYPTION_KEY must be ${hint}; the value given does not decode to ${KEY_ENCRYPTION_KEY_BYTES} bytes`,
    );
  }
  return key;
}

function optionalUrl(value: string | undefined, name: string, problems: string[]): string | undefined {
  if (value !== undefined && !URL.canParse(value))
    problems.push(`${name} must be an absolute URL (e.g. http://host:port)`);
  return value;
}

export function defaultHashConcurrency(): number {
  return Math.min(4, Math.max(1, availableParallelism() - 1));
}
