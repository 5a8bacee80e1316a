import { ConfigError } from "@zero/kit/config";
import { createDb, migrateToLatest } from "@zero/kit/db";
import { createLifecycle } from "@zero/kit/lifecycle";
import { createLogger } from "@zero/kit/log";
import { startTelemetry } from "@zero/kit/telemetry";
import { SERVICE_NAME, startAuthServer } from "./auth-server.js";
import { loadConfig, loadMigrationConfig } from "./config.js";
import { migrations } from "./db/migrations.js";

// Composition root. `main.ts` serves; `main.ts migrate` applies the migrations and exits.

// The lifecycle gives all closers 10 s; the server's drain gets most of it, the rest (relay, NATS,
// pool, span flush) is quick.
const SHUTDOWN_DEADLINE_MS = 10_000;
const DRAIN_MS = 7_000;

const telemetry = startTelemetry({ serviceName: SERVICE_NAME });

try {
  if (process.argv[2] === "migrate") await migrate();
  else await serve();
} catch (error) {
  // A configuration problem is the operator's to fix: say what, without a stack trace.
  process.stderr.write(
    `${SERVICE_NAME}: ${error instanceof ConfigError ? error.message : String((error as Error)?.stack ?? error)}\n`,
  );
  await telemetry.shutdown().catch(() => undefined);
  process.exit(1);
}

async function serve(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(SERVICE_NAME, { level: config.logLevel });
  const lifecycle = createLifecycle(logger, { deadlineMs: SHUTDOWN_DEADLINE_MS });
  lifecycle.defer("telemetry", () => telemetry.shutdown());
  const app = await startAuthServer({ config, logger });
  lifecycle.defer(SERVICE_NAME, () => app.close(DRAIN_MS));
  await lifecycle.wait();
}

async function migrate(): Promise<void> {
  const config = loadMigrationConfig();
  const logger = createLogger(SERVICE_NAME, { level: config.logLevel });
  const db = createDb(config.databaseUrl, { logger });
  try {
    await migrateToLatest(db, migrations, logger);
    logger.info("migrations up to date");
  } finally {
    await db.destroy();
  }
  await telemetry.shutdown();
}
