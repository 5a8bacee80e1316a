import { runService } from "@zero/kit/run-service";
import { loadConfig, loadMigrationConfig } from "./config.js";
import { migrations } from "./db/migrations.js";
import { SERVICE_NAME, startNotificationsServer } from "./notifications-server.js";

// Composition root. `main.ts` serves; `main.ts migrate` applies the migrations and exits.
await runService({
  name: SERVICE_NAME,
  loadConfig,
  serve: (config, logger) => startNotificationsServer({ config, logger, host: config.host }),
  // Of the lifecycle's 10 s, the rest after the drain lets the messages being sent finish.
  drainMs: 6_000,
  migrate: { loadConfig: loadMigrationConfig, migrations },
});
