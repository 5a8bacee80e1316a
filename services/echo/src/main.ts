import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import { runService } from "@zero/kit/run-service";
import { loadConfig } from "./config.js";
import { SERVICE_NAME, startEchoServer } from "./echo-server.js";

// Composition root of the diagnostic echo service (nothing to migrate).
await runService({
  name: SERVICE_NAME,
  loadConfig,
  serve: (config, logger) =>
    startEchoServer({
      logger,
      host: config.host,
      port: config.port,
      verifier: createAuthTokenVerifier({
        authUrl: config.authUrl,
        issuer: config.issuer,
        audience: config.audience,
      }),
    }),
});
