import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@zero/proto/grpc/health/v1/health_pb";
import type { Logger } from "@zero/kit/log";
import type { CircuitState } from "./edge/circuit-breaker.js";
import { sendConnectUnary } from "./edge/connect-unary-call.js";
import type { UpstreamInstance, Upstreams } from "./upstreams.js";

export type ServingState = "SERVING" | "NOT_SERVING";

export interface InstanceHealth {
  readonly url: string;
  /** Its `grpc.health.v1` answer for the server as a whole (service ""); NOT_SERVING when unreachable. */
  readonly status: string;
  /** Its circuit breaker: `open` means the gateway is not sending it calls right now. */
  readonly circuit: CircuitState;
}

export interface ServiceHealth {
  /** SERVING when at least one instance is. */
  readonly status: ServingState;
  readonly instances: readonly InstanceHealth[];
}

export interface HealthReport {
  /** SERVING only when every routed upstream is. */
  readonly status: ServingState;
  /** Upstream name → its status (`GET /health/<name>` details its instances). */
  readonly services: Readonly<Record<string, ServingState>>;
}

export interface UpstreamHealth {
  /** Checks every instance now (concurrent callers share one round) and updates which are in rotation. */
  check(): Promise<HealthReport>;
  /** Checks one upstream's instances now; undefined when no upstream has that name. */
  checkService(name: string): Promise<ServiceHealth | undefined>;
  /** Stops the periodic checks. */
  stop(): void;
}

export interface UpstreamHealthOptions {
  upstreams: Upstreams;
  logger: Logger;
  /** Per check; an instance slower than this counts as NOT_SERVING. Default 1 s. */
  timeoutMs?: number;
  /** Period of the background checks that eject and readmit instances; default 5 s, 0 = none. */
  intervalMs?: number;
  /** Told of every instance's result (metrics). */
  onResult?: (upstream: string, instance: string, serving: boolean) => void;
}

const HEALTH_PATH = "/grpc.health.v1.Health/Check";
const CHECK_BODY = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));

/** How long a probe's answer is reused (see checkInstance). */
const FRESH_MS = 500;

/**
 * Active health checking: every instance of every upstream is asked `grpc.health.v1.Health/Check`
 * periodically (and on `GET /health`). An instance that answers NOT_SERVING — a service draining
 * or missing its database — or does not answer is taken out of the round robin until it answers
 * SERVING again; its circuit breaker covers the seconds between checks. A hung instance cannot
 * hang a check (timeout), and concurrent probes share one round (reused for FRESH_MS after it).
 */
export function createUpstreamHealth(opts: UpstreamHealthOptions): UpstreamHealth {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const { logger } = opts;
  const inflight = new Map<UpstreamInstance, Promise<string>>();

  const checkInstance = (upstream: string, instance: UpstreamInstance): Promise<string> => {
    let pending = inflight.get(instance);
    if (pending === undefined) {
      pending = probe(instance)
        .then(
          (status) => status,
          (error: unknown) => {
            logger.debug({ upstream, instance: instance.url, err: error }, "upstream health check failed");
            return "NOT_SERVING";
          },
        )
        .then((status) => {
          const serving = status === "SERVING";
          if (serving !== instance.serving) {
            if (serving)
              logger.info({ upstream, instance: instance.url }, "upstream instance back in rotation");
            else
              logger.warn(
                { upstream, instance: instance.url, status },
                "upstream instance not serving: taken out of rotation",
              );
          }
          instance.serving = serving;
          opts.onResult?.(upstream, instance.url, serving);
          // Kept a moment as the answer for whoever asks next: a client calling GET /health in a
          // loop makes at most one probe per instance per FRESH_MS, not one per request.
          setTimeout(() => inflight.delete(instance), FRESH_MS).unref();
          return status;
        });
      inflight.set(instance, pending);
    }
    return pending;
  };

  const probe = async (instance: UpstreamInstance): Promise<string> => {
    const result = await sendConnectUnary(instance.sessions, {
      path: HEALTH_PATH,
      headers: {},
      body: CHECK_BODY,
      timeoutMs,
      signal: undefined,
      maxResponseBytes: 1024,
    });
    const response = fromBinary(HealthCheckResponseSchema, result.body);
    return ServingStatus[response.status] ?? "UNKNOWN";
  };

  const checkUpstream = async (name: string): Promise<ServiceHealth | undefined> => {
    const upstream = opts.upstreams.byName(name);
    if (!upstream) return undefined;
    const instances = await Promise.all(
      upstream.instances.map(async (instance) => ({
        url: instance.url,
        status: await checkInstance(name, instance),
        circuit: instance.breaker.state,
      })),
    );
    const status: ServingState = instances.some((i) => i.status === "SERVING") ? "SERVING" : "NOT_SERVING";
    return { status, instances };
  };

  const checkAll = async (): Promise<HealthReport> => {
    const results = await Promise.all(
      opts.upstreams.list.map(async (u) => [u.name, (await checkUpstream(u.name)) as ServiceHealth] as const),
    );
    return {
      status: results.every(([, health]) => health.status === "SERVING") ? "SERVING" : "NOT_SERVING",
      services: Object.fromEntries(results.map(([name, health]) => [name, health.status])),
    };
  };

  const intervalMs = opts.intervalMs ?? 5_000;
  const timer =
    intervalMs > 0
      ? setInterval(() => {
          void checkAll();
        }, intervalMs)
      : undefined;
  timer?.unref();

  return {
    check: checkAll,
    checkService: checkUpstream,
    stop: () => clearInterval(timer),
  };
}
