import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { interceptStream } from "./interceptor-stream.js";
import { createProcessMetricsRegistry } from "./process-metrics.js";

export interface RpcMetrics {
  /** Everything `GET /metrics` exposes: the RPC metrics below plus process metrics. */
  registry: Registry;
  /** Counts every RPC by service/method/code and times it. */
  interceptor: Interceptor;
}

// RPC latencies here range from sub-millisecond cache hits to multi-second argon2 logins.
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One registry per server, so several servers in one process (as in tests) keep their own counts. */
export function createRpcMetrics(): RpcMetrics {
  const registry = createProcessMetricsRegistry();
  const labelNames = ["service", "method", "code"] as const;
  const requests = new Counter({
    name: "rpc_requests_total",
    help: "RPCs handled, by outcome.",
    labelNames,
    registers: [registry],
  });
  const errors = new Counter({
    name: "rpc_errors_total",
    help: "RPCs that ended with an error code.",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "rpc_request_duration_seconds",
    help: "Time from the request to the end of the response (streams included).",
    labelNames,
    buckets: BUCKETS,
    registers: [registry],
  });

  const record = (service: string, method: string, startedAt: number, error: unknown): void => {
    const code = error === undefined ? "ok" : codeToString(ConnectError.from(error, Code.Internal).code);
    const labels = { service, method, code };
    requests.inc(labels);
    if (error !== undefined) errors.inc(labels);
    duration.observe(labels, (performance.now() - startedAt) / 1000);
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const startedAt = performance.now();
    const service = req.service.typeName;
    const method = req.method.name;
    try {
      const res = await next(req);
      if (!res.stream) {
        record(service, method, startedAt, undefined);
        return res;
      }
      return {
        ...res,
        message: interceptStream(res.message, {
          onEnd: (error) => record(service, method, startedAt, error),
        }),
      };
    } catch (error) {
      record(service, method, startedAt, error);
      throw error;
    }
  };

  return { registry, interceptor };
}
