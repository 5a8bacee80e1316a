import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { createProcessMetricsRegistry } from "@zero/kit/process-metrics";
import type { UpstreamObserver } from "./edge/balanced-transport.js";
import type { CircuitState } from "./edge/circuit-breaker.js";

export interface RequestLabels {
  readonly protocol: string;
  /** A route template or `package.Service/Method`, never a raw path (bounded cardinality). */
  readonly route: string;
  readonly status: number;
}

/**
 * RED metrics at the edge — per route (requests, errors, duration) and per upstream instance
 * (attempts by outcome, duration, retries, calls refused while every circuit was open, circuit
 * state, health) — plus the rate limiter's refusals and backend.
 */
export interface GatewayMetrics extends UpstreamObserver {
  readonly registry: Registry;
  /** One finished request. */
  observe(labels: RequestLabels, seconds: number): void;
  circuit(upstream: string, instance: string, state: CircuitState): void;
  health(upstream: string, instance: string, serving: boolean): void;
  rateLimited(route: string): void;
  rateLimitBackend(backend: "redis" | "local"): void;
}

// Sub-millisecond pass-through up to multi-second logins.
const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const CIRCUIT_VALUE: Readonly<Record<CircuitState, number>> = { closed: 0, "half-open": 1, open: 2 };

/** A registry of its own (not prom-client's global one), so gateways started by tests never clash. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = createProcessMetricsRegistry();
  const registers = [registry];

  const requests = new Counter({
    name: "gateway_requests_total",
    help: "Requests answered by the gateway, by protocol, route and HTTP status.",
    labelNames: ["protocol", "route", "status"] as const,
    registers,
  });
  const errors = new Counter({
    name: "gateway_request_errors_total",
    help: "Requests the gateway answered with a 5xx status (the edge's or a service's fault), by protocol and route.",
    labelNames: ["protocol", "route"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "gateway_request_duration_seconds",
    help: "Time from the request to the end of the response, by protocol and route.",
    labelNames: ["protocol", "route"] as const,
    buckets,
    registers,
  });
  const attempts = new Counter({
    name: "gateway_upstream_requests_total",
    help: "Calls to upstream instances: ok, answered (an error from the service itself), failure (unreachable, reset, unavailable, timed out).",
    labelNames: ["upstream", "instance", "outcome"] as const,
    registers,
  });
  const attemptDuration = new Histogram({
    name: "gateway_upstream_request_duration_seconds",
    help: "Duration of calls to upstream instances (to the end of the unary response, or the stream's close).",
    labelNames: ["upstream"] as const,
    buckets,
    registers,
  });
  const retries = new Counter({
    name: "gateway_upstream_retries_total",
    help: "Calls sent again: unsent (never reached an instance) or transient (a safe call that failed in transit).",
    labelNames: ["upstream", "reason"] as const,
    registers,
  });
  const rejected = new Counter({
    name: "gateway_upstream_rejected_total",
    help: "Calls answered 503 without trying because no instance could take them (circuits open).",
    labelNames: ["upstream"] as const,
    registers,
  });
  const circuitState = new Gauge({
    name: "gateway_upstream_circuit_state",
    help: "Circuit breaker per upstream instance: 0 closed, 1 half-open, 2 open.",
    labelNames: ["upstream", "instance"] as const,
    registers,
  });
  const healthy = new Gauge({
    name: "gateway_upstream_healthy",
    help: "1 when the instance's last grpc.health.v1 check said SERVING (it is in rotation).",
    labelNames: ["upstream", "instance"] as const,
    registers,
  });
  const limited = new Counter({
    name: "gateway_rate_limited_total",
    help: "Requests refused with 429 by the rate limiter, by route.",
    labelNames: ["route"] as const,
    registers,
  });
  const limiterBackend = new Gauge({
    name: "gateway_rate_limit_local_fallback",
    help: "1 while Redis is unreachable and rate limits are counted in this replica's memory.",
    registers,
  });

  // prom-client hashes the label values on every call; the label sets seen here are few, so the
  // per-combination children are kept (these run once per request and once per upstream attempt).
  const requestChildren = new Map<
    string,
    {
      requests: Counter.Internal;
      duration: Histogram.Internal<"protocol" | "route">;
      errors: Counter.Internal | undefined;
    }
  >();

  const attemptChildren = new Map<
    string,
    { attempts: Counter.Internal; duration: Histogram.Internal<"upstream"> }
  >();

  return {
    registry,
    observe(labels, seconds) {
      const key = `${labels.protocol} ${labels.status} ${labels.route}`;
      let children = requestChildren.get(key);
      if (children === undefined) {
        children = {
          requests: requests.labels(labels.protocol, labels.route, String(labels.status)),
          duration: duration.labels(labels.protocol, labels.route),
          errors: labels.status >= 500 ? errors.labels(labels.protocol, labels.route) : undefined,
        };
        requestChildren.set(key, children);
      }
      children.requests.inc();
      children.duration.observe(seconds);
      children.errors?.inc();
    },
    attempt(upstream, instance, outcome, seconds) {
      const key = `${outcome} ${upstream} ${instance}`;
      let children = attemptChildren.get(key);
      if (children === undefined) {
        children = {
          attempts: attempts.labels(upstream, instance, outcome),
          duration: attemptDuration.labels(upstream),
        };
        attemptChildren.set(key, children);
      }
      children.attempts.inc();
      children.duration.observe(seconds);
    },
    retry(upstream, reason) {
      retries.labels(upstream, reason).inc();
    },
    rejected(upstream) {
      rejected.labels(upstream).inc();
    },
    circuit(upstream, instance, state) {
      circuitState.labels(upstream, instance).set(CIRCUIT_VALUE[state]);
    },
    health(upstream, instance, serving) {
      healthy.labels(upstream, instance).set(serving ? 1 : 0);
    },
    rateLimited(route) {
      limited.labels(route).inc();
    },
    rateLimitBackend(backend) {
      limiterBackend.set(backend === "local" ? 1 : 0);
    },
  };
}
