import { ConfigError, envReader } from "@zero/kit/config";
import { OWASP_ARGON2 } from "./credentials.js";
import { KEY_ENCRYPTION_KEY_BYTES } from "./signing-keys.js";

export type AuthConfig = ReturnType<typeof loadConfig>;

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const problems: string[] = [];
  const c = {
    port: e.int("PORT", 9001, { min: 0, max: 65535 }),
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_auth"),
    natsUrl: e.url("NATS_URL", "nats://127.0.0.1:4222"),
    logLevel: e.string("LOG_LEVEL", "info"),
    // No default, anywhere: a default key would be a published key.
    keyEncryptionKey: decodeKey(e.optional("AUTH_KEY_ENCRYPTION_KEY"), problems),
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
    accessTokenTtlSeconds: e.int("ACCESS_TOKEN_TTL_SECONDS", 900, { min: 60, max: 3600 }),
    refreshTokenTtlSeconds: e.int("REFRESH_TOKEN_TTL_SECONDS", 604_800, { min: 3600, max: 90 * 86_400 }),
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
      maxConcurrent: e.int("AUTH_HASH_CONCURRENCY", 4, { min: 1, max: 64 }),
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
