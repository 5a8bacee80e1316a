import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Records one finished request. `route` is a template or `package.Service/Method`, never a raw path. */
  observe(labels: { protocol: string; route: string; status: number }, seconds: number): void;
}

// Sub-millisecond pass-through up to multi-second logins.
const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A registry of its own (not prom-client's global one), so gateways started by tests never clash. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ["protocol", "route", "status"] as const;
  const requests = new Counter({
    name: "gateway_requests_total",
    help: "Requests answered by the gateway, by protocol, route and HTTP status.",
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "gateway_request_duration_seconds",
    help: "Time from the request to the end of the response.",
    labelNames,
    buckets,
    registers: [registry],
  });
  return {
    registry,
    observe(labels, seconds) {
      const values = { ...labels, status: String(labels.status) };
      requests.inc(values);
      duration.observe(values, seconds);
    },
  };
}
