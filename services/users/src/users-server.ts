import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import { createCloserStack } from "@zero/kit/closer-stack";
import { checkDb, createDb, migrateToLatest } from "@zero/kit/db";
import type { Logger } from "@zero/kit/log";
import type { TokenVerifier } from "@zero/kit/principal";
import { createNulRejectingInterceptor } from "@zero/kit/request-text";
import { startServer } from "@zero/kit/server";
import {
  createServiceTokenSource,
  serviceAuthInterceptor,
  type ServiceTokenSource,
} from "@zero/kit/service-identity";
import { tracingClientInterceptor } from "@zero/kit/tracing";
import { PersonalDataService } from "@zero/proto/zero/privacy/v1/privacy_pb";
import { UserService } from "@zero/proto/zero/users/v1/users_pb";
import type { Kysely } from "kysely";
import { startAuthEventConsumers } from "./auth-events.js";
import type { UsersConfig } from "./config.js";
import { migrations } from "./db/migrations.js";
import type { DB } from "./db/schema.js";
import { createPersonalDataExport } from "./personal-data-export.js";
import { collectPersonalData } from "./personal-data.js";
import { createPersonalDataService, PERSONAL_DATA_SERVICE_NAME } from "./personal-data-service.js";
import { createUserService } from "./user-service.js";

export const SERVICE_NAME = "users";

export interface UsersServer {
  port: number;
  url: string;
  /** The service's pool, for tests that inspect its tables. Closed by `close()`. */
  db: Kysely<DB>;
  /** Stops in reverse order of start: server (drain up to `drainMs`, default 10 s) → consumers → connections → database. */
  close(drainMs?: number): Promise<void>;
}

export interface UsersServerOptions {
  config: UsersConfig;
  logger: Logger;
  host?: string;
  /** Verifies callers' tokens. Default: the kit verifier over auth's GetJwks at `AUTH_URL`. */
  verifier?: TokenVerifier;
  /** This service's token for the export's calls. Default: auth's IssueServiceToken with the configured secret. */
  serviceTokens?: ServiceTokenSource;
}

/**
 * Everything `main.ts` runs, minus process concerns (telemetry, signals), so tests and e2e can start
 * the service in-process: `config.port` 0 picks a free port. Applies migrations first.
 */
export async function startUsersServer(opts: UsersServerOptions): Promise<UsersServer> {
  const { config, logger } = opts;
  const closers = createCloserStack(logger);
  let drainMs: number | undefined;

  try {
    const db = createDb<DB>(config.databaseUrl, { logger });
    closers.push("database", () => db.destroy());
    await migrateToLatest(db, migrations, logger);

    // One long-lived HTTP/2 connection per service this one calls.
    const transportTo = (url: string, interceptors: Interceptor[]) => {
      const sessions = new Http2SessionManager(url, { pingIntervalMs: 30_000, pingTimeoutMs: 5_000 });
      closers.push(`connection to ${url}`, () => sessions.abort());
      return createConnectTransport({
        baseUrl: url,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: sessions,
        interceptors: [tracingClientInterceptor, ...interceptors],
      });
    };

    const serviceTokens =
      opts.serviceTokens ??
      createServiceTokenSource({
        authUrl: config.authUrl,
        clientId: config.serviceClientId,
        clientSecret: config.serviceClientSecret,
      });
    const sources = config.personalDataSources.map(({ name, url }) => ({
      name,
      client: createClient(PersonalDataService, transportTo(url, [serviceAuthInterceptor(serviceTokens)])),
    }));
    if (config.unconfiguredPersonalDataServices.length > 0) {
      logger.warn(
        { services: config.unconfiguredPersonalDataServices },
        "these services have no <NAME>_URL: the GDPR export does not ask them",
      );
    }
    const personalData = createPersonalDataExport({
      own: { name: PERSONAL_DATA_SERVICE_NAME, collect: (userId) => collectPersonalData(db, userId) },
      sources,
      serviceToken: () => serviceTokens.token(),
      timeoutMs: config.exportTimeoutMs,
      maxConcurrent: config.exportMaxConcurrent,
      logger,
    });

    const verifier =
      opts.verifier ??
      createAuthTokenVerifier({
        transport: transportTo(config.authUrl, []),
        issuer: config.issuer,
        audience: config.audience,
      });

    // In the background: the service serves while NATS or auth's stream is not there yet.
    const events = startAuthEventConsumers({ db, natsUrl: config.natsUrl, logger, name: SERVICE_NAME });
    closers.push("events", () => events.stop());

    const server = await startServer({
      name: SERVICE_NAME,
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: config.port,
      logger,
      services: [UserService, PersonalDataService],
      routes: (router) => {
        router.service(UserService, createUserService({ db, personalData }));
        router.service(PersonalDataService, createPersonalDataService({ db }));
      },
      verifier,
      interceptors: [createNulRejectingInterceptor()],
      readiness: [
        { name: "database", check: () => checkDb(db) },
        { name: "events", check: () => events.check() },
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
