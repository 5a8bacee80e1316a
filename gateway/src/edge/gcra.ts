import type { RateLimitBucket } from "./rate-limit-policy.js";

// GCRA (generic cell rate algorithm): per bucket one number, the theoretical arrival time (TAT)
// of the next request if the client sent at exactly the allowed rate. A request is allowed when
// it arrives no earlier than TAT - period (i.e. the client is at most `limit` requests ahead);
// allowing it pushes TAT on by period/limit. Same result as a sliding window with one key and
// no per-request entries. The Redis script and the in-memory fallback implement the same step.

/** The outcome for a request, reported for its most restrictive bucket (as the headers show it). */
export interface RateLimitDecision {
  readonly allowed: boolean;
  readonly limit: number;
  readonly periodMs: number;
  /** Requests still allowed right now after this one. */
  readonly remaining: number;
  /** Until the bucket is full again. */
  readonly resetMs: number;
  /** When refused: until the request would be allowed. 0 when allowed. */
  readonly retryAfterMs: number;
}

/**
 * KEYS: the buckets; ARGV: limit and period (ms) per bucket. Either every bucket admits the
 * request and all are charged, or none is (a refused request costs nothing). Time is Redis's own
 * clock, so every gateway replica agrees. Returns {allowed, reported bucket (1-based), remaining,
 * reset ms, retry-after ms}.
 */
export const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local allowed = 1
local tats = {}
local pick, pick_remaining, pick_reset, retry_after = 1, nil, 0, 0
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local wait = new_tat - period - now
  if wait > 0 then
    if allowed == 1 or wait > retry_after then pick, retry_after, pick_reset = i, wait, tat - now end
    allowed = 0
  elseif allowed == 1 then
    tats[i] = new_tat
    local remaining = math.floor((period - (new_tat - now)) / interval)
    if pick_remaining == nil or remaining < pick_remaining then
      pick, pick_remaining, pick_reset = i, remaining, new_tat - now
    end
  end
end
if allowed == 0 then
  return {0, pick, 0, math.ceil(pick_reset), math.ceil(retry_after)}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.ceil(tats[i] - now) + 1)
end
return {1, pick, pick_remaining, math.ceil(pick_reset), 0}
`;

/** Turns the script's reply into a decision for the buckets it was given. */
export function decisionFromScript(buckets: readonly RateLimitBucket[], reply: unknown): RateLimitDecision {
  const [allowed, pick, remaining, reset, retryAfter] = reply as (number | undefined)[];
  const bucket = (buckets[(pick ?? 1) - 1] ?? buckets[0]) as RateLimitBucket;
  return {
    allowed: allowed === 1,
    limit: bucket.limit,
    periodMs: bucket.periodMs,
    remaining: Math.max(0, remaining ?? 0),
    resetMs: Math.max(0, reset ?? 0),
    retryAfterMs: Math.max(0, retryAfter ?? 0),
  };
}

export interface LocalRateLimiter {
  check(buckets: readonly RateLimitBucket[]): RateLimitDecision;
}

/**
 * The same algorithm in this process's memory: the fallback while Redis is unreachable. Limits
 * then hold per gateway replica instead of cluster-wide. At most `maxKeys` buckets are kept (the
 * least recently charged go first), so a flood of client addresses cannot exhaust memory.
 */
export function createLocalRateLimiter(
  opts: { maxKeys?: number; now?: () => number } = {},
): LocalRateLimiter {
  const maxKeys = opts.maxKeys ?? 100_000;
  const now = opts.now ?? Date.now;
  const tats = new Map<string, number>();

  return {
    check(buckets) {
      const at = now();
      let allowed = true;
      let pick = 0;
      let pickRemaining = Infinity;
      let pickReset = 0;
      let retryAfter = 0;
      const next: number[] = [];
      buckets.forEach((bucket, i) => {
        const interval = bucket.periodMs / bucket.limit;
        const tat = Math.max(tats.get(bucket.key) ?? at, at);
        const newTat = tat + interval;
        const wait = newTat - bucket.periodMs - at;
        if (wait > 0) {
          if (allowed || wait > retryAfter) {
            pick = i;
            retryAfter = wait;
            pickReset = tat - at;
          }
          allowed = false;
        } else if (allowed) {
          next[i] = newTat;
          const remaining = Math.floor((bucket.periodMs - (newTat - at)) / interval);
          if (remaining < pickRemaining) {
            pick = i;
            pickRemaining = remaining;
            pickReset = newTat - at;
          }
        }
      });
      if (allowed) {
        buckets.forEach((bucket, i) => {
          tats.delete(bucket.key);
          if (tats.size >= maxKeys) {
            const oldest = tats.keys().next();
            if (oldest.done !== true) tats.delete(oldest.value);
          }
          tats.set(bucket.key, next[i] as number);
        });
      }
      const bucket = buckets[pick] as RateLimitBucket;
      return {
        allowed,
        limit: bucket.limit,
        periodMs: bucket.periodMs,
        remaining: allowed ? Math.max(0, pickRemaining) : 0,
        resetMs: Math.ceil(Math.max(0, pickReset)),
        retryAfterMs: allowed ? 0 : Math.ceil(retryAfter),
      };
    },
  };
}
