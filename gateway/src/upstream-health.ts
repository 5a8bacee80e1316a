import { createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@zero/proto/grpc/health/v1/health_pb";
import type { Logger } from "@zero/kit/log";
import type { Upstreams } from "./upstreams.js";

export interface HealthReport {
  /** SERVING only when every routed upstream is. */
  readonly status: "SERVING" | "NOT_SERVING";
  /** Upstream name → its `grpc.health.v1` status for the server as a whole (service ""). */
  readonly services: Readonly<Record<string, string>>;
}

export interface UpstreamHealth {
  check(): Promise<HealthReport>;
}

/**
 * `GET /health`: asks every upstream's `grpc.health.v1.Health/Check` at once. An upstream that
 * does not answer within `timeoutMs` counts as NOT_SERVING, so a hung service cannot hang the
 * probe. Concurrent probes share one round of checks.
 */
export function createUpstreamHealth(opts: {
  upstreams: Upstreams;
  logger: Logger;
  timeoutMs?: number;
}): UpstreamHealth {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const clients = opts.upstreams.list.map((upstream) => ({
    name: upstream.name,
    client: createClient(Health, upstream.transport),
  }));
  let running: Promise<HealthReport> | undefined;

  const run = async (): Promise<HealthReport> => {
    const results = await Promise.all(
      clients.map(async ({ name, client }) => {
        try {
          const response = await client.check({ service: "" }, { timeoutMs });
          return [name, ServingStatus[response.status]] as const;
        } catch (error) {
          opts.logger.warn({ upstream: name, err: error }, "upstream health check failed");
          return [name, ServingStatus[ServingStatus.NOT_SERVING]] as const;
        }
      }),
    );
    const services = Object.fromEntries(results);
    const serving = results.every(([, status]) => status === ServingStatus[ServingStatus.SERVING]);
    return { status: serving ? "SERVING" : "NOT_SERVING", services };
  };

  return {
    check() {
      running ??= run().finally(() => {
        running = undefined;
      });
      return running;
    },
  };
}
