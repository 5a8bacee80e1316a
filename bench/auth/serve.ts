import { startGateway } from "@zero/gateway/gateway-server";
import { publicServices } from "@zero/gateway/public-services";
import { createLogger } from "@zero/kit/log";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { startAuthServer } from "../../services/auth/src/auth-server.js";
import { loadConfig } from "../../services/auth/src/config.js";

// One process of the benchmark: `serve.ts auth` or `serve.ts gateway`, forked by run.ts with an IPC
// channel. Each serves on PORT and measures its own event-loop delay, which run.ts resets and reads
// around each phase — the load generator runs in another process, so it does not distort this.

type Message = { type: "reset" } | { type: "report" } | { type: "stop" };

const role = process.argv[2];
const logger = createLogger(`bench-${role}`, { level: "warn" });
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();

const server =
  role === "auth"
    ? await startAuthServer({ config: loadConfig(), logger, host: "127.0.0.1" })
    : await startGateway({
        services: publicServices,
        upstreamUrls: { auth: process.env["AUTH_URL"] ?? "" },
        logger,
        host: "127.0.0.1",
        port: Number(process.env["PORT"]),
        // `gateway-limited`: the production edge — Redis rate limits with the built-in stricter rule
        // on */Login (10/min per client) and the revocation check. Every client of the benchmark is
        // 127.0.0.1, so the per-IP default is raised: only the login rule should bite.
        ...(role === "gateway-limited"
          ? {
              rateLimit: {
                redisUrl: process.env["REDIS_URL"] ?? "",
                limits: { default: { limit: 1_000_000_000, periodMs: 60_000 }, routes: [], users: {} },
              },
              tokenRevocation: { redisUrl: process.env["REDIS_URL"] ?? "", accessTokenTtlSeconds: 900 },
            }
          : {}),
      });

const ms = (ns: number) => Math.round(ns / 1e4) / 100;
process.on("message", (message: Message) => {
  if (message.type === "reset") {
    delay.reset();
    process.send?.({ type: "reset" });
  } else if (message.type === "report") {
    process.send?.({
      type: "report",
      p50: ms(delay.percentile(50)),
      p99: ms(delay.percentile(99)),
      max: ms(delay.max),
    });
  } else {
    void server.close(2000).then(() => process.exit(0));
  }
});
process.send?.({ type: "ready", url: server.url });
