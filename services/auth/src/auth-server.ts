import { checkDb, createDb, migrateToLatest } from "@zero/kit/db";
import { startOutboxPublisher } from "@zero/kit/events/outbox-publisher";
import type { Logger } from "@zero/kit/log";
import { createTokenVerifier } from "@zero/kit/principal";
import { startServer } from "@zero/kit/server";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import type { Kysely } from "kysely";
import { createAccessTokenIssuer } from "./access-token.js";
import { createAuthService } from "./auth-service.js";
import type { AuthConfig } from "./config.js";
import { createPasswordHasher } from "./credentials.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createSigningKeyStore } from "./signing-keys.js";

export const SERVICE_NAME = "auth";
export const EVENT_STREAM = { name: "ZERO_AUTH", subjects: ["zero.auth.v1.>"] };

export interface AuthServer {
  port: number;
  url: string;
  /** The service's pool, for tests that inspect its tables. Closed by `close()`. */
  db: Kysely<DB>;
  /**
   * Stops in reverse order of start: server (in-flight calls get up to `drainMs`, default 10 s) →
   * event publishing (relay, NATS) → database.
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
  const closers: { name: string; close: () => Promise<void> }[] = [];
  let drainMs: number | undefined;
  const close = async (): Promise<void> => {
    let failure: Error | undefined;
    for (const { name, close } of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (error) {
        logger.error({ err: error, component: name }, "failed to close");
        failure ??= error instanceof Error ? error : new Error(`closing ${name} failed: ${String(error)}`);
      }
    }
    if (failure !== undefined) throw failure;
  };

  try {
    const db = createDb<DB>(config.databaseUrl, { logger });
    closers.push({ name: "database", close: () => db.destroy() });
    await migrateToLatest(db, migrations, logger);

    // In the background: registrations succeed while NATS is down, their events wait in the outbox.
    const events = startOutboxPublisher({
      db,
      natsUrl: config.natsUrl,
      logger,
      streams: [EVENT_STREAM],
      name: SERVICE_NAME,
    });
    closers.push({ name: "events", close: () => events.stop() });

    const signingKeys = createSigningKeyStore({ db, kek: config.keyEncryptionKey });
    const signingKey = await signingKeys.ensureActiveKey();
    // Opening it now turns a wrong AUTH_KEY_ENCRYPTION_KEY into a start-up failure, not failed logins.
    await signingKeys.activeKey();
    logger.info(signingKey, signingKey.created ? "signing key created" : "signing key loaded");
    const service = createAuthService({
      db,
      hasher: createPasswordHasher(config.argon2),
      accessTokens: createAccessTokenIssuer({
        issuer: config.issuer,
        audience: config.audience,
        ttlSeconds: config.accessTokenTtlSeconds,
        signingKey: () => signingKeys.activeKey(),
      }),
      signingKeys,
      relay: events,
      refreshTokenTtlSeconds: config.refreshTokenTtlSeconds,
    });

    const server = await startServer({
      name: SERVICE_NAME,
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: config.port,
      logger,
      services: [AuthService],
      routes: (router) => router.service(AuthService, service),
      // Auth verifies its own tokens from its key store: no network call to itself.
      verifier: createTokenVerifier({
        issuer: config.issuer,
        audience: config.audience,
        getJwks: async () => ({ keys: await signingKeys.publicJwks() }),
      }),
      readiness: [
        { name: "database", check: () => checkDb(db) },
        { name: "nats", check: () => events.check() },
      ],
    });
    closers.push({ name: "server", close: () => server.close(drainMs) });
    return {
      port: server.port,
      url: server.url,
      db,
      close: (ms) => {
        drainMs = ms;
        return close();
      },
    };
  } catch (error) {
    // A half-started service must not leave pools or connections open behind the error.
    await close().catch(() => undefined);
    throw error;
  }
}
