import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import { createCloserStack } from "@zero/kit/closer-stack";
import { checkDb, createDb, migrateToLatest } from "@zero/kit/db";
import { startOutboxPublisher } from "@zero/kit/events/outbox-publisher";
import type { Logger } from "@zero/kit/log";
import type { TokenVerifier } from "@zero/kit/principal";
import { startPeriodicJob } from "@zero/kit/periodic";
import { createNulRejectingInterceptor } from "@zero/kit/request-text";
import { startServer } from "@zero/kit/server";
import { PaymentService } from "@zero/proto/zero/payments/v1/payments_pb";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import type { Kysely } from "kysely";
import type { PaymentsConfig } from "./config.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createIdempotency } from "./idempotency.js";
import { EVENT_STREAM } from "./payment-events.js";
import { createPaymentService } from "./payment-service.js";
import { createPersonalDataService } from "./personal-data.js";
import { createSimulatedProvider, type PaymentProvider } from "./provider.js";
import { startWebhookWorker } from "./provider-webhooks.js";
import { startReconciliation } from "./reconciliation.js";
import { startUserErasure } from "./user-erasure.js";
import { SIGNATURE_HEADER } from "./webhook-signature.js";

export const SERVICE_NAME = "payments";

// Expired idempotency keys are deleted this often (they stop counting at 24 h either way).
const PRUNE_INTERVAL_MS = 10 * 60_000;

export interface PaymentsServer {
  port: number;
  url: string;
  /** The service's pool, for tests that inspect its tables. Closed by `close()`. */
  db: Kysely<DB>;
  /**
   * Stops in reverse order of start: server (in-flight calls get up to `drainMs`, default 10 s) →
   * reconciliation sweep, provider deliveries, webhook worker, erasure consumer, event publishing →
   * database.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * Everything `main.ts` runs, minus process concerns (telemetry, signals), so tests, benchmarks and
 * e2e can start the service in-process: `config.port` 0 picks a free port. Applies migrations first.
 */
export async function startPaymentsServer(opts: {
  config: PaymentsConfig;
  logger: Logger;
  host?: string;
  /** Default: auth's published keys (AUTH_URL). Tests pass their own issuer's. */
  verifier?: TokenVerifier;
  /** Default: the simulated provider, delivering its webhooks to this service. */
  provider?: PaymentProvider;
}): Promise<PaymentsServer> {
  const { config, logger } = opts;
  const closers = createCloserStack(logger);
  let drainMs: number | undefined;

  try {
    const db = createDb<DB>(config.databaseUrl, { logger });
    closers.push("database", () => db.destroy());
    await migrateToLatest(db, migrations, logger);

    // In the background: payments are taken while NATS is down, their events wait in the outbox.
    const events = startOutboxPublisher({
      db,
      natsUrl: config.natsUrl,
      logger,
      streams: [EVENT_STREAM],
      name: SERVICE_NAME,
    });
    closers.push("events", () => events.stop());
    const erasure = startUserErasure({ db, natsUrl: config.natsUrl, logger });
    closers.push("user erasure", () => erasure.stop());
    const webhooks = startWebhookWorker({ db, logger, relay: events });
    closers.push("webhook worker", () => webhooks.stop());

    const idempotency = createIdempotency({
      db,
      logger,
      waitMs: config.idempotencyWaitMs,
      leaseMs: config.idempotencyLeaseMs,
    });
    const pruning = startPeriodicJob({
      intervalMs: PRUNE_INTERVAL_MS,
      atStart: false,
      logger,
      failureMessage: "pruning idempotency keys failed",
      async run() {
        const n = await idempotency.prune();
        if (n > 0) logger.info({ deleted: n }, "expired idempotency keys pruned");
      },
    });
    closers.push("pruning", () => pruning.stop());

    // Known once the server listens; the provider delivers nothing before a payment exists.
    const own: { url?: string } = {};
    const provider =
      opts.provider ??
      createSimulatedProvider({
        webhookSecrets: () => config.webhookSecrets.slice(0, 1),
        settleDelayMs: config.settleDelayMs,
        logger,
        deliver: createWebhookDelivery(() => config.providerWebhookUrl ?? own.url),
      });
    closers.push("provider", () => provider.close());
    // Settles payments a crash left `processing`, by asking the provider.
    const reconciliation = startReconciliation({
      db,
      provider,
      logger,
      relay: events,
      intervalMs: config.reconcileIntervalMs,
      olderThanMs: config.reconcileAfterMs,
    });
    closers.push("reconciliation", () => reconciliation.stop());

    const server = await startServer({
      name: SERVICE_NAME,
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: config.port,
      logger,
      services: [PaymentService, PersonalDataService],
      routes: (router) => {
        router.service(
          PaymentService,
          createPaymentService({
            db,
            provider,
            idempotency,
            relay: events,
            webhooks,
            webhookSecrets: () => config.webhookSecrets,
            logger,
          }),
        );
        router.service(PersonalDataService, createPersonalDataService({ db }));
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
        { name: "nats", check: () => events.check() },
      ],
    });
    own.url = server.url;
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

/**
 * How the simulated provider reaches the webhook: the RPC over Connect, the raw body in
 * `google.api.HttpBody` and the signature in the header — what the gateway's REST route
 * `POST /v1/payments/webhook` turns a real provider's POST into.
 */
function createWebhookDelivery(target: () => string | undefined) {
  let client: ReturnType<typeof createClient<typeof PaymentService>> | undefined;
  let clientUrl: string | undefined;
  return async (body: Uint8Array, signature: string): Promise<void> => {
    const url = target();
    if (url === undefined) throw new Error("the payments service is not listening yet");
    if (client === undefined || clientUrl !== url) {
      client = createClient(PaymentService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
      clientUrl = url;
    }
    await client.handleProviderWebhook(
      { rawBody: { contentType: "application/json", data: body } },
      { headers: { [SIGNATURE_HEADER]: signature }, timeoutMs: 10_000 },
    );
  };
}
