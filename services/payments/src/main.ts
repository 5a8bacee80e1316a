import { runService } from "@zero/kit/run-service";
import { loadConfig, loadMigrationConfig } from "./config.js";
import { migrations } from "./db/migrations.js";
import { SERVICE_NAME, startPaymentsServer } from "./payments-server.js";

// Composition root. `main.ts` serves; `main.ts migrate` applies the migrations and exits.
await runService({
  name: SERVICE_NAME,
  loadConfig,
  serve: (config, logger) => startPaymentsServer({ config, logger, host: config.host }),
  migrate: { loadConfig: loadMigrationConfig, migrations },
});
