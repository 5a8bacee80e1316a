import type { DescService } from "@bufbuild/protobuf";
import { BlockList } from "node:net";
import { ConfigError, envReader } from "@zero/kit/config";
import { DEFAULT_OPERATIONS_NETWORKS, addCidr } from "./edge/client-address.js";
import {
  parseRateLimit,
  type RateLimit,
  type RateLimitConfig,
  type RateLimitRule,
} from "./edge/rate-limit-policy.js";
import type { RouteTimeoutRule } from "./edge/route-timeouts.js";

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  /** One line per request (method, route, status, duration, request id, upstream, client IP). */
  readonly accessLog: boolean;
  /** REST bodies above this size are refused with 413 before they are buffered. */
  readonly maxBodyBytes: number;
  /** Default deadline of an upstream call when the client sends none and no route rule matches. */
  readonly upstreamTimeoutMs: number;
  /** Per-RPC default deadlines (`ROUTE_TIMEOUTS=zero.auth.v1.AuthService/Login=5000,…`). */
  readonly routeTimeouts: readonly RouteTimeoutRule[];
  readonly authIssuer: string;
  readonly authAudience: string;
  /** Upstream name (`auth` for `zero.auth.v1`) → its instance URLs, comma-separated. Unset = not routed. */
  readonly upstreamUrls: Readonly<Record<string, string>>;
  /** Both set: the port serves TLS (ALPN h2 + http/1.1). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** Undefined when `RATE_LIMIT_ENABLED=false`. */
  readonly tokenRevocation: { readonly redisUrl: string; readonly accessTokenTtlSeconds: number } | undefined;
  readonly rateLimit: { readonly redisUrl: string; readonly limits: RateLimitConfig } | undefined;
  readonly cors: {
    readonly allowedOrigins: readonly string[];
    readonly maxAgeSeconds: number;
    readonly allowCredentials: boolean;
  };
  /** CIDRs whose `X-Forwarded-*` headers are believed. */
  readonly trustedProxies: readonly string[];
  /** Who may read `/metrics` and `/health/<service>` (CIDRs). */
  readonly operationsNetworks: readonly string[];
  readonly resilience: {
    readonly breakerFailureThreshold: number;
    readonly breakerOpenMs: number;
    readonly retryRatio: number;
    readonly retryMinPerSecond: number;
    readonly healthCheckIntervalMs: number;
    readonly http1Connections: number;
  };
  readonly tokenCache: { readonly maxEntries: number; readonly maxTtlMs: number };
}

/** Where each service listens when nothing says otherwise: the ports of DESIGN.md's table. */
const defaultUrls: Readonly<Record<string, string>> = {
  auth: "http://127.0.0.1:9001",
};

/** `zero.auth.v1.AuthService` → `auth`: the proto package names the upstream and its `<NAME>_URL`. */
export function upstreamNameOf(service: DescService): string {
  const match = /^zero\.([a-z][a-z0-9_]*)\.v\d+$/.exec(service.file.proto.package);
  if (!match?.[1])
    throw new Error(`${service.typeName}: package must be zero.<name>.v<N> to be routed by the gateway`);
  return match[1];
}

export function loadConfig(
  env: Record<string, string | undefined>,
  services: readonly DescService[],
): GatewayConfig {
  const e = envReader(env);
  const problems: string[] = [];
  const attempt = <T>(name: string, parse: () => T, fallback: T): T => {
    try {
      return parse();
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
      return fallback;
    }
  };

  const upstreamUrls: Record<string, string> = {};
  for (const name of new Set(services.map(upstreamNameOf))) {
    const variable = `${name.toUpperCase()}_URL`;
    const urls = e.list(variable, defaultUrls[name] === undefined ? [] : [defaultUrls[name]]);
    // Never echo the value: URLs may carry credentials.
    if (urls.some((url) => !URL.canParse(url))) {
      problems.push(`${variable} must be an absolute URL or a comma-separated list of them`);
    }
    if (urls.length > 0) upstreamUrls[name] = urls.join(",");
  }

  const certFile = e.optional("TLS_CERT_FILE");
  const keyFile = e.optional("TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push("TLS_CERT_FILE and TLS_KEY_FILE must be set together (PEM files) or not at all");
  }

  const rateLimitEnabled = e.bool("RATE_LIMIT_ENABLED", true);
  const limits: RateLimitConfig = {
    default: attempt("RATE_LIMIT_DEFAULT", () => parseRateLimit(e.string("RATE_LIMIT_DEFAULT", "100/min")), {
      limit: 100,
      periodMs: 60_000,
    }),
    routes: attempt(
      "RATE_LIMIT_ROUTES",
      () =>
        pairs(e.list("RATE_LIMIT_ROUTES", [])).map(([pattern, limit]): RateLimitRule => ({
          pattern,
          limit: parseRateLimit(limit),
        })),
      [],
    ),
    users: attempt(
      "RATE_LIMIT_USERS",
      () =>
        Object.fromEntries(
          pairs(e.list("RATE_LIMIT_USERS", [])).map(([user, limit]): [string, RateLimit] => [
            user,
            parseRateLimit(limit),
          ]),
        ),
      {},
    ),
  };

  const trustedProxies = e.list("TRUSTED_PROXIES", []);
  attempt(
    "TRUSTED_PROXIES",
    () => trustedProxies.forEach((cidr) => addCidr(new BlockList(), cidr)),
    undefined,
  );
  const operationsNetworks = e.list("OPERATIONS_NETWORKS", [...DEFAULT_OPERATIONS_NETWORKS]);
  attempt(
    "OPERATIONS_NETWORKS",
    () => operationsNetworks.forEach((cidr) => addCidr(new BlockList(), cidr)),
    undefined,
  );

  const upstreamTimeoutMs = e.int("UPSTREAM_TIMEOUT_MS", 30_000, { min: 100, max: 10 * 60_000 });
  const config: GatewayConfig = {
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 8080, { min: 0, max: 65535 }),
    logLevel: e.string("LOG_LEVEL", "info"),
    accessLog: e.bool("ACCESS_LOG", true),
    maxBodyBytes: e.int("MAX_BODY_BYTES", 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    upstreamTimeoutMs,
    routeTimeouts: attempt(
      "ROUTE_TIMEOUTS",
      () =>
        pairs(e.list("ROUTE_TIMEOUTS", [])).map(([pattern, ms]) => {
          const timeoutMs = Number(ms);
          if (!/^\d+$/.test(ms) || timeoutMs < 1 || timeoutMs > 10 * 60_000) {
            throw new Error(`"${ms}" is not a timeout in milliseconds (1-600000)`);
          }
          return { pattern, timeoutMs };
        }),
      [],
    ),
    authIssuer: e.string("AUTH_ISSUER", "zero-auth"),
    authAudience: e.string("AUTH_AUDIENCE", "zero"),
    upstreamUrls: Object.freeze(upstreamUrls),
    tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
    // auth's revocation list (logout, password change) lives in the same Redis.
    tokenRevocation: e.bool("TOKEN_REVOCATION_CHECK", true)
      ? {
          redisUrl: e.url("REDIS_URL", "redis://127.0.0.1:6379"),
          accessTokenTtlSeconds: e.int("ACCESS_TOKEN_TTL_SECONDS", 900, { min: 60, max: 3600 }),
        }
      : undefined,
    rateLimit: rateLimitEnabled
      ? { redisUrl: e.url("REDIS_URL", "redis://127.0.0.1:6379"), limits }
      : undefined,
    cors: {
      allowedOrigins: e.list("CORS_ALLOWED_ORIGINS", []),
      maxAgeSeconds: e.int("CORS_MAX_AGE_SECONDS", 600, { min: 0, max: 86_400 }),
      allowCredentials: e.bool("CORS_ALLOW_CREDENTIALS", false),
    },
    trustedProxies,
    operationsNetworks,
    resilience: {
      breakerFailureThreshold: e.int("BREAKER_FAILURE_THRESHOLD", 5, { min: 1, max: 1000 }),
      breakerOpenMs: e.int("BREAKER_OPEN_MS", 5_000, { min: 100, max: 10 * 60_000 }),
      retryRatio: e.int("RETRY_BUDGET_PERCENT", 20, { min: 0, max: 100 }) / 100,
      retryMinPerSecond: e.int("RETRY_MIN_PER_SECOND", 10, { min: 0, max: 10_000 }),
      healthCheckIntervalMs: e.int("HEALTH_CHECK_INTERVAL_MS", 5_000, { min: 0, max: 10 * 60_000 }),
      http1Connections: e.int("UPSTREAM_HTTP1_CONNECTIONS", 4, { min: 0, max: 64 }),
    },
    tokenCache: {
      maxEntries: e.int("TOKEN_CACHE_MAX_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
      maxTtlMs: e.int("TOKEN_CACHE_TTL_MS", 60_000, { min: 0, max: 60 * 60_000 }),
    },
  };
  // Every problem at once, the reader's and the gateway's own.
  try {
    e.done();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError([...error.problems, ...problems]);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** `a=b` items of a list; throws naming the item without `=`. */
function pairs(items: readonly string[]): [string, string][] {
  return items.map((item) => {
    const at = item.lastIndexOf("=");
    if (at <= 0 || at === item.length - 1) throw new Error(`"${item}" must have the form <name>=<value>`);
    return [item.slice(0, at).trim(), item.slice(at + 1).trim()];
  });
}
