import { createCloserStack } from "@zero/kit/closer-stack";
import { checkDb, createDb, migrateToLatest } from "@zero/kit/db";
import { startOutboxPublisher } from "@zero/kit/events/outbox-publisher";
import type { Logger } from "@zero/kit/log";
import { createTokenVerifier } from "@zero/kit/principal";
import { createNulRejectingInterceptor } from "@zero/kit/request-text";
import { startServer } from "@zero/kit/server";
import { createTokenRevocations, withRevocationCheck } from "@zero/kit/token-revocations";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { ServiceIdentityService } from "@zero/proto/zero/auth/v1/service_identity_pb";
import { SessionService } from "@zero/proto/zero/auth/v1/session_pb";
import { SigningKeyService } from "@zero/proto/zero/auth/v1/signing_keys_pb";
import { TwoFactorService } from "@zero/proto/zero/auth/v1/two_factor_pb";
import { UserAdminService } from "@zero/proto/zero/auth/v1/user_admin_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { bootstrapAdmin } from "./accounts/admin-bootstrap.js";
import { createAuthService } from "./auth-service.js";
import type { AuthConfig } from "./config.js";
import { createPasswordHasher } from "./credentials/credentials.js";
import { createLoginThrottle } from "./credentials/login-throttle.js";
import { createThrottle, type ThrottlePolicy } from "./credentials/throttle.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createLoggingMailSender, createMailer, createNotificationsMailSender } from "./mail-sender.js";
import { startMaintenance } from "./maintenance.js";
import { createPersonalDataService } from "./personal-data-service.js";
import { createServiceIdentityService } from "./service-identity-service.js";
import { createSessionService } from "./session-service.js";
import { createSigningKeyService } from "./signing-key-service.js";
import { createAccessTokenIssuer } from "./tokens/access-token.js";
import { deriveKey } from "./tokens/sealed-secret.js";
import { createSessions } from "./tokens/sessions.js";
import { createSigningKeyStore } from "./tokens/signing-keys.js";
import { createTwoFactorService } from "./two-factor-service.js";
import { createTwoFactor } from "./two-factor/two-factor.js";
import { createUserAdminService } from "./user-admin-service.js";

export const SERVICE_NAME = "auth";
export const EVENT_STREAM = { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] };
export const SERVED = [
  AuthService,
  SessionService,
  TwoFactorService,
  UserAdminService,
  SigningKeyService,
  ServiceIdentityService,
  PersonalDataService,
];

const HOUR = 3_600_000;
// Verification and reset mails: 3 an hour per account (or address typed), then 1 min, 2 min, …
const MAIL_POLICY: ThrottlePolicy = {
  name: "mail",
  windowMs: HOUR,
  freeFailures: 3,
  baseDelayMs: 60_000,
  maxDelayMs: HOUR,
  hardCap: 20,
};
const SERVICE_CLIENT_POLICY: ThrottlePolicy = {
  name: "service-token:client",
  windowMs: HOUR,
  freeFailures: 5,
  baseDelayMs: 1000,
  maxDelayMs: 5 * 60_000,
  hardCap: 100,
};
const SERVICE_ADDRESS_POLICY: ThrottlePolicy = {
  ...SERVICE_CLIENT_POLICY,
  name: "service-token:ip",
  freeFailures: 20,
};

export interface AuthServer {
  port: number;
  url: string;
  /** The service's pool, for tests that inspect its tables. Closed by `close()`. */
  db: Kysely<DB>;
  /** One maintenance pass now (tests); it also runs every AUTH_MAINTENANCE_INTERVAL_SECONDS. */
  runMaintenance(): Promise<void>;
  /**
   * Stops in reverse order of start: server (in-flight calls get up to `drainMs`, default 10 s) →
   * mail, maintenance → event publishing (relay, NATS) → Redis → database.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * Everything `main.ts` runs, minus process concerns (telemetry, signals), so tests and e2e can start
 * the service in-process: `config.port` 0 picks a free port. Applies migrations first.
 */
export async function startAuthServer(opts: {
  config: AuthConfig;
  logger: Logger;
  host?: string;
}): Promise<AuthServer> {
  const { config, logger } = opts;
  const closers = createCloserStack(logger);
  let drainMs: number | undefined;

  try {
    const db = createDb<DB>(config.databaseUrl, { logger });
    closers.push("database", () => db.destroy());
    await migrateToLatest(db, migrations, logger);

    const redis = connectRedis(config.redisUrl, logger);
    closers.push("redis", () => redis.disconnect());
    // Not required to start (see connectRedis), but worth a moment so the first requests share it.
    await Promise.race([once(redis, "ready"), sleep(2000)]).catch(() => undefined);

    // In the background: registrations succeed while NATS is down, their events wait in the outbox.
    const events = startOutboxPublisher({
      db,
      natsUrl: config.natsUrl,
      logger,
      streams: [EVENT_STREAM],
      name: SERVICE_NAME,
    });
    closers.push("events", () => events.stop());

    const signingKeys = createSigningKeyStore({
      db,
      kek: config.keyEncryptionKey,
      activationDelaySeconds: config.keyActivationDelaySeconds,
      // Until every token the replaced key signed has expired, with a margin for clock skew.
      passiveRetentionSeconds: config.accessTokenTtlSeconds + 120,
    });
    const signingKey = await signingKeys.ensureActiveKey();
    // Opening it now turns a wrong AUTH_KEY_ENCRYPTION_KEY into a start-up failure, not failed logins.
    await signingKeys.activeKey();
    logger.info(signingKey, signingKey.created ? "signing key created" : "signing key loaded");

    const accessTokens = createAccessTokenIssuer({
      issuer: config.issuer,
      audience: config.audience,
      ttlSeconds: config.accessTokenTtlSeconds,
      serviceTtlSeconds: config.serviceTokenTtlSeconds,
      signingKey: () => signingKeys.activeKey(),
    });
    const sessions = createSessions({
      db,
      accessTokens,
      revocations: createTokenRevocations({
        redis,
        accessTokenTtlSeconds: config.accessTokenTtlSeconds,
        logger,
      }),
      refreshTtlSeconds: config.refreshTokenTtlSeconds,
      reuseGraceSeconds: config.refreshReuseGraceSeconds,
      logger,
    });
    const hasher = createPasswordHasher(config.argon2);
    const twoFactor = createTwoFactor({
      db,
      secretKey: deriveKey(config.keyEncryptionKey, "totp-secrets"),
      recoveryKey: deriveKey(config.keyEncryptionKey, "recovery-codes"),
      issuer: config.totpIssuer,
    });
    const loginThrottle = createLoginThrottle({ redis, logger });

    // auth signs its own service token: no credentials needed to call notifications.
    const sender =
      config.notificationsUrl === undefined
        ? createLoggingMailSender(logger)
        : createNotificationsMailSender({
            url: config.notificationsUrl,
            tokens: {
              token: async () => (await accessTokens.issueServiceToken(SERVICE_NAME)).token,
              invalidate: () => undefined,
            },
          });
    const mailer = createMailer({ sender, logger });
    closers.push("mail", () => mailer.drain(2000));

    if (config.bootstrapAdmin !== undefined) {
      try {
        const admin = await bootstrapAdmin(db, hasher, config.bootstrapAdmin);
        if (admin.outcome !== "skipped")
          logger.info({ email: admin.email, outcome: admin.outcome }, "bootstrap admin");
      } catch (error) {
        // Never fatal: the platform runs without it and the operator reads why.
        logger.error({ err: error }, "bootstrap admin not created");
      }
    }

    const maintenance = startMaintenance({
      db,
      signingKeys,
      intervalMs: config.maintenanceIntervalSeconds * 1000,
      logger,
    });
    closers.push("maintenance", () => maintenance.stop());

    const server = await startServer({
      name: SERVICE_NAME,
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: config.port,
      logger,
      services: SERVED,
      routes: (router) => {
        router.service(
          AuthService,
          createAuthService({
            db,
            hasher,
            sessions,
            signingKeys,
            twoFactor,
            loginThrottle,
            mailThrottle: createThrottle({ redis, logger, policy: MAIL_POLICY }),
            mailer,
            relay: events,
            logger,
            emailVerificationTtlSeconds: config.emailVerificationTtlSeconds,
            passwordResetTtlSeconds: config.passwordResetTtlSeconds,
            emailVerificationUrl: config.emailVerificationUrl,
            passwordResetUrl: config.passwordResetUrl,
          }),
        );
        router.service(SessionService, createSessionService({ db, sessions }));
        router.service(TwoFactorService, createTwoFactorService({ db, hasher, twoFactor, loginThrottle }));
        router.service(UserAdminService, createUserAdminService({ db, sessions, relay: events }));
        router.service(SigningKeyService, createSigningKeyService({ signingKeys, logger }));
        router.service(
          ServiceIdentityService,
          createServiceIdentityService({
            clients: config.serviceClients,
            accessTokens,
            clientThrottle: createThrottle({ redis, logger, policy: SERVICE_CLIENT_POLICY }),
            addressThrottle: createThrottle({ redis, logger, policy: SERVICE_ADDRESS_POLICY }),
            logger,
          }),
        );
        router.service(PersonalDataService, createPersonalDataService({ db }));
      },
      // auth verifies its own tokens from its key store (no network call to itself), re-reading the
      // keys every 10 s so a retired key stops working here at once, and refuses tokens of ended
      // sessions and blocked or deleted accounts from its own tables.
      verifier: withRevocationCheck(
        createTokenVerifier({
          issuer: config.issuer,
          audience: config.audience,
          getJwks: async () => ({ keys: await signingKeys.publicJwks() }),
          refetchCooldownMs: 1000,
          maxAgeMs: 10_000,
        }),
        (claims) => sessions.isRevoked(claims),
      ),
      // Passwords only ever reach argon2, never the database: one set with a NUL keeps working.
      interceptors: [
        createNulRejectingInterceptor({ exempt: ["password", "current_password", "new_password"] }),
      ],
      readiness: [
        { name: "database", check: () => checkDb(db) },
        { name: "nats", check: () => events.check() },
      ],
    });
    closers.push("server", () => server.close(drainMs));
    return {
      port: server.port,
      url: server.url,
      db,
      runMaintenance: () => maintenance.runOnce(),
      close: (ms) => {
        drainMs = ms;
        return closers.closeAll();
      },
    };
  } catch (error) {
    // A half-started service must not leave pools or connections open behind the error.
    await closers.closeAll().catch(() => undefined);
    throw error;
  }
}

/**
 * Redis holds the throttles and the revocation list, both of which degrade rather than fail when
 * it is away: commands fail fast instead of queueing (no request waits for a reconnect), and the
 * client keeps reconnecting in the background.
 */
export function connectRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 5000),
  });
  let down = false;
  redis.on("error", (error: Error) => {
    if (!down) logger.warn({ err: error }, "Redis connection failed; retrying in the background");
    down = true;
  });
  redis.on("ready", () => {
    if (down) logger.info("Redis connection restored");
    down = false;
  });
  return redis;
}
