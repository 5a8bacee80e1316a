import { ConfigError, envReader } from "@zero/kit/config";

export type NotificationsConfig = ReturnType<typeof loadConfig>;

const DATABASE_URL = "postgres://postgres@127.0.0.1:5432/zero_notifications";

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const problems: string[] = [];
  const smtpUrl = e.optional("SMTP_URL");
  // Never echo the value: it usually carries the SMTP password.
  if (smtpUrl !== undefined && !/^smtps?:\/\/[^/?#]+/i.test(smtpUrl)) {
    problems.push("SMTP_URL must be smtp://[user:pass@]host[:port] or smtps://… (the value given is not)");
  }
  const from = e.string("MAIL_FROM", "Zero <no-reply@zero.local>");
  if (!/^[^\r\n]*@[^\r\n]*$/.test(from)) problems.push(`MAIL_FROM must hold an address, got "${from}"`);
  const c = {
    // The interface to listen on; the dev platform binds loopback (only the gateway is public).
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 9007, { min: 0, max: 65535 }),
    databaseUrl: e.url("DATABASE_URL", DATABASE_URL),
    redisUrl: e.url("REDIS_URL", "redis://127.0.0.1:6379"),
    natsUrl: e.url("NATS_URL", "nats://127.0.0.1:4222"),
    logLevel: e.string("LOG_LEVEL", "info"),
    // Access tokens are verified locally against auth's published keys (fetched from AUTH_URL).
    authUrl: e.url("AUTH_URL", "http://127.0.0.1:9001"),
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
    mail: {
      smtpUrl,
      from,
      // Used when SMTP_URL is unset: one .eml file per message (git-ignored under .local/).
      dir: e.string("MAIL_DIR", ".local/mail"),
      messageIdDomain: e.string("MAIL_MESSAGE_ID_DOMAIN", "notifications.zero.local"),
    },
    // Seed 000: one message per recipient per minute; later mail waits (DEFERRED), never dropped.
    recipientIntervalMs: e.int("RECIPIENT_INTERVAL_MS", 60_000, { min: 100, max: 86_400_000 }),
    delivery: {
      concurrency: e.int("DELIVERY_CONCURRENCY", 4, { min: 1, max: 32 }),
      pollMs: e.int("DELIVERY_POLL_MS", 250, { min: 20, max: 60_000 }),
      retry: {
        maxAttempts: e.int("DELIVERY_MAX_ATTEMPTS", 10, { min: 1, max: 100 }),
        baseDelayMs: e.int("DELIVERY_RETRY_BASE_MS", 5_000, { min: 10, max: 3_600_000 }),
        maxDelayMs: e.int("DELIVERY_RETRY_MAX_MS", 600_000, { min: 10, max: 86_400_000 }),
      },
    },
    // Dead letters are deleted this long after they were dead-lettered: the max_age of their copy
    // in the ZERO_DLQ stream (30 days), so the listing never outlives what NATS still holds.
    deadLetterRetentionDays: e.int("DEAD_LETTER_RETENTION_DAYS", 30, { min: 1, max: 3650 }),
    events: {
      maxDeliver: e.int("EVENT_MAX_DELIVER", 5, { min: 1, max: 50 }),
      backoffMs: e.int("EVENT_BACKOFF_MS", 1_000, { min: 10, max: 60_000 }),
      concurrency: e.int("EVENT_CONCURRENCY", 4, { min: 1, max: 64 }),
      // An event fetched by a replica that died comes back after this long (handlers take ms).
      ackWaitMs: e.int("EVENT_ACK_WAIT_MS", 10_000, { min: 1_000, max: 300_000 }),
    },
  };
  try {
    e.done();
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError([...error.problems, ...problems]);
    throw error;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    ...c,
    mail: Object.freeze(c.mail),
    delivery: Object.freeze({ ...c.delivery, retry: Object.freeze(c.delivery.retry) }),
    events: Object.freeze(c.events),
  });
}

/** What `main.ts migrate` needs: the database only. */
export function loadMigrationConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    databaseUrl: e.url("DATABASE_URL", DATABASE_URL),
    logLevel: e.string("LOG_LEVEL", "info"),
  };
  e.done();
  return Object.freeze(c);
}
