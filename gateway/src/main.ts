import { readFileSync } from "node:fs";
import { createLifecycle } from "@zero/kit/lifecycle";
import { createLogger } from "@zero/kit/log";
import { startTelemetry } from "@zero/kit/telemetry";
import { loadConfig } from "./config.js";
import { startGateway } from "./gateway-server.js";
import { publicServices } from "./public-services.js";

// Started before any request can create a span (tracers obtained earlier are proxies that bind
// to the SDK once it is registered).
const telemetry = startTelemetry({ serviceName: "gateway" });
const config = loadConfig(process.env, publicServices);
const logger = createLogger("gateway", { level: config.logLevel });
const lifecycle = createLifecycle(logger);
lifecycle.defer("telemetry", () => telemetry.shutdown());

const gateway = await startGateway({
  services: publicServices,
  upstreamUrls: config.upstreamUrls,
  logger,
  host: config.host,
  port: config.port,
  ...(config.tls === undefined
    ? {}
    : { tls: { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) } }),
  tokenIssuer: config.authIssuer,
  tokenAudience: config.authAudience,
  tokenCache: config.tokenCache,
  maxBodyBytes: config.maxBodyBytes,
  upstreamTimeoutMs: config.upstreamTimeoutMs,
  routeTimeouts: config.routeTimeouts,
  ...(config.rateLimit === undefined ? {} : { rateLimit: config.rateLimit }),
  ...(config.tokenRevocation === undefined ? {} : { tokenRevocation: config.tokenRevocation }),
  cors: config.cors,
  trustedProxies: config.trustedProxies,
  operationsNetworks: config.operationsNetworks,
  resilience: config.resilience,
  accessLog: config.accessLog,
});
// Less than the lifecycle's 10 s, so the closers after it still get their turn.
lifecycle.defer("gateway", () => gateway.close(8_000));
await lifecycle.wait();
