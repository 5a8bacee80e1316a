import { Redis } from "ioredis";
import type { Logger } from "@zero/kit/log";
import { GCRA_SCRIPT, createLocalRateLimiter, decisionFromScript, type RateLimitDecision } from "./gcra.js";
import type { RateLimitBucket } from "./rate-limit-policy.js";

export interface RateLimiter {
  /** Charges the request to its buckets (one atomic script run in Redis) and says whether it may pass. */
  check(buckets: readonly RateLimitBucket[]): Promise<RateLimitDecision>;
  /** Where the counters live right now: `redis`, or `local` while Redis is unreachable. */
  readonly backend: "redis" | "local";
  /**
   * Resolves once Redis is connected, or after `timeoutMs` (then the limiter starts on the local
   * fallback, logged once). Awaited at start-up, so the first requests do not race the connection.
   */
  connected(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface RateLimiterOptions {
  redisUrl: string;
  logger: Logger;
  /** A Redis answer slower than this counts as Redis being down for this request; default 100 ms. */
  commandTimeoutMs?: number;
  /** Told when the backend changes (metrics). */
  onBackendChange?: (backend: "redis" | "local") => void;
}

type GcraCommand = (numberOfKeys: number, ...args: (string | number)[]) => Promise<unknown>;

/**
 * Rate limiting shared by every gateway replica through Redis, and what happens when Redis is
 * unreachable: the gateway FAILS OPEN ONTO A LOCAL LIMITER. Refusing all traffic because a
 * counter store is down would turn a Redis outage into a full outage; letting everything through
 * would drop brute-force protection exactly when someone may be attacking. So requests are
 * counted in this process's memory with the same algorithm and limits — per replica instead of
 * cluster-wide — until Redis answers again. The switch is logged once each way, not per request.
 *
 * ioredis is set to fail fast: no offline queue (a command while disconnected errors at once
 * instead of waiting for a reconnect), no per-command retries, a short command timeout (a hung
 * Redis), and reconnection in the background.
 */
export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const { logger } = opts;
  const redis = new Redis(opts.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 100,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    lazyConnect: false,
    // Checks issued in the same turn of the event loop go out in one write and come back in one
    // read: under load that is one syscall pair for many requests instead of one per request
    // (bench/gateway RESULTS.md, session 5). Each check is still its own atomic script run.
    enableAutoPipelining: true,
  });
  redis.defineCommand("zeroGcra", { lua: GCRA_SCRIPT });
  const gcra = (redis as unknown as { zeroGcra: GcraCommand }).zeroGcra.bind(redis);
  const local = createLocalRateLimiter();
  let backend: "redis" | "local" = "redis";

  const useBackend = (next: "redis" | "local", cause?: unknown): void => {
    if (backend === next) return;
    backend = next;
    if (next === "local") {
      logger.warn(
        { err: cause },
        "rate limiting: Redis is unreachable, counting in memory on this replica until it is back",
      );
    } else {
      logger.info("rate limiting: Redis is back, counting there again");
    }
    opts.onBackendChange?.(next);
  };
  // Connection errors are reported through `useBackend`; the client's own stream would repeat
  // every reconnect attempt.
  redis.on("error", (error: unknown) => logger.debug({ err: error }, "rate-limit Redis connection error"));
  redis.on("ready", () => useBackend("redis"));

  return {
    get backend() {
      return backend;
    },
    async check(buckets) {
      if (redis.status === "ready") {
        const args: (string | number)[] = buckets.map((b) => b.key);
        for (const bucket of buckets) args.push(bucket.limit, bucket.periodMs);
        try {
          const reply = await gcra(buckets.length, ...args);
          useBackend("redis");
          return decisionFromScript(buckets, reply);
        } catch (error) {
          useBackend("local", error);
        }
      } else {
        useBackend("local", new Error(`Redis connection is ${redis.status}`));
      }
      return local.check(buckets);
    },
    async connected(timeoutMs) {
      if (redis.status === "ready") return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        redis.once("ready", done);
        function done(): void {
          clearTimeout(timer);
          redis.off("ready", done);
          resolve();
        }
      });
      // (Re-read: TypeScript narrowed `status` before the await.)
      const status: string = redis.status;
      if (status !== "ready") useBackend("local", new Error(`Redis connection is ${status}`));
    },
    async close() {
      redis.disconnect();
      await Promise.resolve();
    },
  };
}
