import type { Logger } from "@zero/kit/log";
import type { Redis } from "ioredis";
import { createHash } from "node:crypto";

// Failure counters with an increasing delay (OWASP ASVS 2.2.1, NIST SP 800-63B §5.2.2): the first
// `freeFailures` in a window cost nothing, each further one locks the key for twice as long as
// the last (from `baseDelayMs` up to `maxDelayMs`), and `hardCap` failures lock it until the
// window ends. Locks are always temporary, so a stranger can delay an account's sign-in but never
// disable it, and a password reset still works meanwhile.
//
// State lives in Redis, shared by every replica, and updated by one Lua script per failure so
// concurrent attempts cannot slip between the count and the lock. When Redis is unreachable the
// throttle keeps working per replica from memory (logged once per outage) rather than either
// refusing every sign-in or letting guesses through unlimited.

export interface ThrottlePolicy {
  /** Redis key namespace, e.g. `login:account`. */
  name: string;
  windowMs: number;
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** At this many failures in the window the key stays locked until the window ends. */
  hardCap: number;
}

export interface Throttle {
  /** Milliseconds until `key` may try again; 0 when it may now. */
  retryAfterMs(key: string): Promise<number>;
  /** Records a failure; answers the failures in the window and the lock it caused. */
  fail(key: string): Promise<{ failures: number; lockMs: number }>;
  /** Forgets the key's failures (a successful sign-in). */
  reset(key: string): Promise<void>;
}

const FAIL_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local lock = lockFor(n)
if lock > 0 then redis.call('SET', KEYS[2], '1', 'PX', lock) end
return {n, lock}`;

export function createThrottle(deps: { redis: Redis; policy: ThrottlePolicy; logger: Logger }): Throttle {
  const { redis, policy, logger } = deps;
  const script = `
local function lockFor(n)
  if n >= ${policy.hardCap} then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl > 0 then return ttl end
    return ${policy.windowMs}
  end
  if n <= ${policy.freeFailures} then return 0 end
  return math.min(${policy.baseDelayMs} * 2 ^ (n - ${policy.freeFailures} - 1), ${policy.maxDelayMs})
end
${FAIL_SCRIPT}`;
  const local = createLocalCounters(policy);
  // Keys are hashed: emails and addresses are personal data and need not sit in Redis in clear.
  const keys = (key: string) => {
    const id = createHash("sha256").update(key).digest("base64url");
    return {
      count: `zero:auth:throttle:${policy.name}:n:${id}`,
      lock: `zero:auth:throttle:${policy.name}:lock:${id}`,
    };
  };
  let degraded = false;
  const fallback = <T>(error: unknown, value: () => T): T => {
    if (!degraded) {
      degraded = true;
      logger.warn(
        { err: error, throttle: policy.name },
        "Redis unavailable: throttling from this replica's memory",
      );
    }
    return value();
  };
  const recovered = () => {
    if (degraded) {
      degraded = false;
      logger.info({ throttle: policy.name }, "Redis is back: throttling shared again");
    }
  };

  return {
    async retryAfterMs(key) {
      try {
        const ttl = await redis.pttl(keys(key).lock);
        recovered();
        return Math.max(ttl, 0, local.retryAfterMs(key));
      } catch (error) {
        return fallback(error, () => local.retryAfterMs(key));
      }
    },
    async fail(key) {
      const k = keys(key);
      try {
        const [failures, lockMs] = (await redis.eval(
          script,
          2,
          k.count,
          k.lock,
          String(policy.windowMs),
        )) as [number, number];
        recovered();
        return { failures, lockMs };
      } catch (error) {
        return fallback(error, () => local.fail(key));
      }
    },
    async reset(key) {
      local.reset(key);
      const k = keys(key);
      try {
        await redis.del(k.count, k.lock);
        recovered();
      } catch (error) {
        fallback(error, () => undefined);
      }
    },
  };
}

const LOCAL_MAX_KEYS = 100_000;

/** The same policy over an in-process map, bounded so a flood of distinct keys cannot grow it forever. */
function createLocalCounters(policy: ThrottlePolicy) {
  const entries = new Map<string, { failures: number; windowEnds: number; lockedUntil: number }>();
  const current = (key: string, now: number) => {
    const entry = entries.get(key);
    if (entry && entry.windowEnds > now) return entry;
    entries.delete(key);
    return undefined;
  };
  return {
    retryAfterMs(key: string): number {
      const now = Date.now();
      return Math.max((current(key, now)?.lockedUntil ?? 0) - now, 0);
    },
    fail(key: string): { failures: number; lockMs: number } {
      const now = Date.now();
      const entry = current(key, now) ?? { failures: 0, windowEnds: now + policy.windowMs, lockedUntil: 0 };
      entry.failures++;
      const n = entry.failures;
      const lockMs =
        n >= policy.hardCap
          ? entry.windowEnds - now
          : n <= policy.freeFailures
            ? 0
            : Math.min(policy.baseDelayMs * 2 ** (n - policy.freeFailures - 1), policy.maxDelayMs);
      entry.lockedUntil = Math.max(entry.lockedUntil, now + lockMs);
      entries.delete(key);
      entries.set(key, entry);
      // Oldest first (insertion order): drop the least recently failed keys.
      for (const oldest of entries.keys()) {
        if (entries.size <= LOCAL_MAX_KEYS) break;
        entries.delete(oldest);
      }
      return { failures: n, lockMs };
    },
    reset(key: string): void {
      entries.delete(key);
    },
  };
}
