import { rpcPattern } from "./rpc-pattern.js";

/** `limit` requests per `periodMs`, with bursts up to `limit` (GCRA). */
export interface RateLimit {
  readonly limit: number;
  readonly periodMs: number;
}

/** A limit for the RPCs whose `package.Service/Method` matches `pattern` (`*` matches anything). */
export interface RateLimitRule {
  readonly pattern: string;
  readonly limit: RateLimit;
}

export interface RateLimitConfig {
  /** Every request of a client (all routes together); the seeds' 100/min per IP. */
  readonly default: RateLimit;
  /** First match wins; applies on top of the default, per client. */
  readonly routes: readonly RateLimitRule[];
  /** Subject (`sub`) → a limit replacing the default for that user, counted per user rather than per IP. */
  readonly users: Readonly<Record<string, RateLimit>>;
}

/** One counter a request draws from. */
export interface RateLimitBucket {
  readonly key: string;
  readonly limit: number;
  readonly periodMs: number;
}

export interface RateLimitPolicy {
  /**
   * The buckets a request draws from: the client's overall one, plus its route's when a rule
   * matches. `rpc` is `package.Service/Method`, or undefined for requests matching no route.
   * The client is the user when it has an override, its IP otherwise.
   */
  bucketsFor(rpc: string | undefined, ip: string, subject: string | undefined): RateLimitBucket[];
  /** True when some user has an override, i.e. identifying callers can change their limit. */
  readonly hasUserOverrides: boolean;
}

/**
 * Brute-force targets get much less than the default: guessing passwords, mass registration,
 * reset-code guessing. They apply to every protocol and every REST binding of the method.
 * Config (`RATE_LIMIT_ROUTES`) rules are checked before these, so they can loosen or tighten them.
 */
export const DEFAULT_ROUTE_RULES: readonly RateLimitRule[] = [
  { pattern: "*/Login", limit: { limit: 10, periodMs: 60_000 } },
  { pattern: "*/Register", limit: { limit: 5, periodMs: 60_000 } },
  { pattern: "*Password*", limit: { limit: 5, periodMs: 60_000 } },
];

const PERIOD_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};

/** `100/min`, `10/30s`, `1000/h` → a RateLimit; throws a message naming the accepted forms. */
export function parseRateLimit(text: string): RateLimit {
  const match = /^\s*(\d{1,9})\s*\/\s*(\d{0,6})\s*([a-z]+)\s*$/.exec(text);
  const unit = match ? PERIOD_MS[match[3] as string] : undefined;
  const count = match ? Number(match[1]) : 0;
  const multiplier = match?.[2] ? Number(match[2]) : 1;
  if (!match || unit === undefined || count < 1 || multiplier < 1) {
    throw new Error(`"${text}" is not a rate limit: write <requests>/<period>, e.g. 100/min, 10/30s, 1000/h`);
  }
  return { limit: count, periodMs: unit * multiplier };
}

export function createRateLimitPolicy(config: RateLimitConfig): RateLimitPolicy {
  const rules = [...config.routes, ...DEFAULT_ROUTE_RULES].map((rule) => ({
    ...rule,
    regexp: rpcPattern(rule.pattern),
  }));
  // RPC names are a small closed set: resolve each once.
  const ruleOf = new Map<string, (typeof rules)[number] | null>();
  const users = new Map(Object.entries(config.users));

  return {
    hasUserOverrides: users.size > 0,
    bucketsFor(rpc, ip, subject) {
      const userLimit = subject === undefined ? undefined : users.get(subject);
      // Hash tag: every key of one client lands in one Redis Cluster slot, as the script needs.
      const client = userLimit === undefined ? `{ip:${ip}}` : `{user:${subject}}`;
      const overall = userLimit ?? config.default;
      const buckets: RateLimitBucket[] = [{ key: `zero:rl:${client}`, ...overall }];
      if (rpc === undefined) return buckets;
      let rule = ruleOf.get(rpc);
      if (rule === undefined) {
        rule = rules.find((r) => r.regexp.test(rpc)) ?? null;
        ruleOf.set(rpc, rule);
      }
      if (rule !== null) buckets.push({ key: `zero:rl:${client}:${rule.pattern}`, ...rule.limit });
      return buckets;
    },
  };
}
