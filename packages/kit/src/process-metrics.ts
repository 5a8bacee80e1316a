import { Registry, collectDefaultMetrics } from "prom-client";

/**
 * How often the event-loop lag is sampled. prom-client's default, 10 ms, is a timer that wakes
 * every process 100 times a second even when it has nothing to do (an idle echo service: ~100
 * context switches and 8 ms of CPU a second on a `node-svc` VM, where a wake-up is dear —
 * bench/gateway's wakeUpCost). Ten samples a second still show a loop that stalls.
 */
const EVENT_LOOP_LAG_SAMPLE_MS = 100;

/**
 * A registry of its own (not prom-client's global one, so several servers in one process — as in
 * tests — never clash on registration) holding Node's process metrics: CPU, memory, GC, handles,
 * event-loop lag.
 */
export function createProcessMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_LAG_SAMPLE_MS });
  return registry;
}
