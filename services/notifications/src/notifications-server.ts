import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import { createCloserStack } from "@zero/kit/closer-stack";
import { checkDb, createDb, migrateToLatest } from "@zero/kit/db";
import type { Logger } from "@zero/kit/log";
import type { TokenVerifier } from "@zero/kit/principal";
import { createNulRejectingInterceptor } from "@zero/kit/request-text";
import { startServer } from "@zero/kit/server";
import { NotificationService } from "@zero/proto/zero/notifications/v1/notifications_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { AUTH_EVENTS_DURABLE, createAuthEventHandlers } from "./auth-events.js";
import type { NotificationsConfig } from "./config.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createDeadLetterReplayer } from "./dead-letter-replay.js";
import { startDeadLetterRetention } from "./dead-letter-retention.js";
import { startDeliveryWorker } from "./delivery-worker.js";
import { startEventConsumers } from "./event-consumers.js";
import { createMailQueue } from "./mail-queue.js";
import { createMailTransport } from "./mail-transport.js";
import { createNotificationService } from "./notification-service.js";
import { createPaymentEventHandlers, PAYMENT_EVENTS_DURABLE } from "./payment-events.js";
import { createPersonalDataService } from "./personal-data-service.js";
import { createRecipientLimit } from "./recipient-limit.js";
import { createTemplateCatalog } from "./template-catalog.js";

export const SERVICE_NAME = "notifications";

export interface NotificationsServer {
  port: number;
  url: string;
  /** The service's pool, for tests that inspect its tables. Closed by `close()`. */
  db: Kysely<DB>;
  /**
   * Stops in reverse order of start: server (in-flight calls get up to `drainMs`, default 10 s) →
   * dead-letter retention → event consumers → delivery worker (messages being sent finish) → SMTP → Redis → database.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * Everything `main.ts` runs, minus process concerns (telemetry, signals), so tests and e2e can start
 * the service in-process: `config.port` 0 picks a free port. Applies migrations first.
 */
export async function startNotificationsServer(opts: {
  config: NotificationsConfig;
  logger: Logger;
  host?: string;
  /** Default: verifies tokens against auth's JWKS at `config.authUrl`. */
  verifier?: TokenVerifier;
}): Promise<NotificationsServer> {
  const { config, logger } = opts;
  const closers = createCloserStack(logger);
  let drainMs: number | undefined;

  try {
    const db = createDb<DB>(config.databaseUrl, { max: config.delivery.concurrency + 6, logger });
    closers.push("database", () => db.destroy());
    await migrateToLatest(db, migrations, logger);

    const redis = createRedis(config.redisUrl, logger);
    closers.push("redis", () => redis.disconnect());

    const transport = createMailTransport({
      smtpUrl: config.mail.smtpUrl,
      mailDir: config.mail.dir,
      maxConnections: config.delivery.concurrency,
      logger,
    });
    closers.push("mail transport", () => transport.close());

    const limit = createRecipientLimit({ redis, intervalMs: config.recipientIntervalMs });
    const catalog = createTemplateCatalog({ db, redis, logger });
    const queue = createMailQueue({ catalog, limit, messageIdDomain: config.mail.messageIdDomain, logger });
    const worker = startDeliveryWorker({
      db,
      transport,
      limit,
      logger,
      from: config.mail.from,
      retry: config.delivery.retry,
      concurrency: config.delivery.concurrency,
      pollMs: config.delivery.pollMs,
    });
    closers.push("delivery worker", () => worker.stop());

    const handlers = {
      [AUTH_EVENTS_DURABLE]: createAuthEventHandlers({ queue }),
      [PAYMENT_EVENTS_DURABLE]: createPaymentEventHandlers({ queue }),
    };
    const replayer = createDeadLetterReplayer({ db, consumers: handlers, onResolved: () => worker.wake() });
    // In the background: the API serves while NATS is down; events wait in their streams.
    const events = startEventConsumers({
      db,
      natsUrl: config.natsUrl,
      logger,
      handlers,
      maxDeliver: config.events.maxDeliver,
      backoffMs: config.events.backoffMs,
      concurrency: config.events.concurrency,
      ackWaitMs: config.events.ackWaitMs,
      onHandled: () => worker.wake(),
    });
    closers.push("event consumers", () => events.stop());

    const retention = startDeadLetterRetention({
      db,
      logger,
      retentionMs: config.deadLetterRetentionDays * 24 * 3600_000,
    });
    closers.push("dead-letter retention", () => retention.stop());

    const notifications = createNotificationService({ db, queue, catalog, replayer, worker });
    const personalData = createPersonalDataService({ db });
    const server = await startServer({
      name: SERVICE_NAME,
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: config.port,
      logger,
      services: [NotificationService, PersonalDataService],
      routes: (router) => {
        router.service(NotificationService, notifications);
        router.service(PersonalDataService, personalData);
      },
      verifier:
        opts.verifier ??
        createAuthTokenVerifier({
          authUrl: config.authUrl,
          issuer: config.issuer,
          audience: config.audience,
        }),
      interceptors: [createNulRejectingInterceptor()],
      readiness: [
        { name: "database", check: () => checkDb(db) },
        { name: "redis", check: async () => void (await redis.ping()) },
        { name: "nats", check: () => events.check() },
      ],
    });
    closers.push("server", () => server.close(drainMs));
    return {
      port: server.port,
      url: server.url,
      db,
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

function createRedis(url: string, logger: Logger): Redis {
  // Commands fail fast while Redis is down (the cache falls back to Postgres, the worker backs
  // off) instead of queueing without bound.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 2_000, connectTimeout: 5_000 });
  let down = false;
  redis.on("error", (err) => {
    if (!down) logger.warn({ err: { message: err.message } }, "redis: connection failed; retrying");
    down = true;
  });
  redis.on("ready", () => {
    if (down) logger.info("redis: connected");
    down = false;
  });
  return redis;
}
