import { describe, expect, it } from "vitest";
import { ConfigError } from "@zero/kit/config";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { loadConfig, upstreamNameOf } from "./config.js";
import { DEFAULT_OPERATIONS_NETWORKS } from "./edge/client-address.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env, [AuthService, EchoService]);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  return expect.unreachable("the configuration was accepted");
}

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({}, [AuthService])).toEqual({
      host: "0.0.0.0",
      port: 8080,
      logLevel: "info",
      accessLog: true,
      maxBodyBytes: 1024 * 1024,
      upstreamTimeoutMs: 30_000,
      routeTimeouts: [],
      authIssuer: "zero-auth",
      authAudience: "zero",
      upstreamUrls: { auth: "http://127.0.0.1:9001" },
      tls: undefined,
      tokenRevocation: { redisUrl: "redis://127.0.0.1:6379", accessTokenTtlSeconds: 900 },
      rateLimit: {
        redisUrl: "redis://127.0.0.1:6379",
        limits: { default: { limit: 100, periodMs: 60_000 }, routes: [], users: {} },
      },
      cors: { allowedOrigins: [], maxAgeSeconds: 600, allowCredentials: false },
      trustedProxies: [],
      operationsNetworks: [...DEFAULT_OPERATIONS_NETWORKS],
      resilience: {
        breakerFailureThreshold: 5,
        breakerOpenMs: 5_000,
        retryRatio: 0.2,
        retryMinPerSecond: 10,
        healthCheckIntervalMs: 5_000,
        http1Connections: 4,
      },
      tokenCache: { maxEntries: 10_000, maxTtlMs: 60_000 },
    });
  });

  it("maps each proto package zero.<name>.v1 to <NAME>_URL, leaving unset ones unrouted", () => {
    expect(loadConfig({ AUTH_URL: "http://auth:9001" }, [AuthService, EchoService]).upstreamUrls).toEqual({
      auth: "http://auth:9001",
    });
    expect(loadConfig({ TESTING_URL: "http://echo:1" }, [AuthService, EchoService]).upstreamUrls).toEqual({
      auth: "http://127.0.0.1:9001",
      testing: "http://echo:1",
    });
  });

  it("takes several instances of a service as a comma-separated list", () => {
    const config = loadConfig({ AUTH_URL: "http://a:9001, http://b:9001" }, [AuthService]);
    expect(config.upstreamUrls).toEqual({ auth: "http://a:9001,http://b:9001" });
  });

  it("parses rate limits, per-route and per-user overrides, route timeouts and trusted proxies", () => {
    const config = loadConfig(
      {
        RATE_LIMIT_DEFAULT: "300/5m",
        RATE_LIMIT_ROUTES: "zero.auth.v1.AuthService/Login=3/min,*/GetJwks=1000/h",
        RATE_LIMIT_USERS: "user-42=10/s",
        ROUTE_TIMEOUTS: "*/Login=5000",
        TRUSTED_PROXIES: "10.0.0.0/8,::1",
        CORS_ALLOWED_ORIGINS: "https://shop.example.com",
        TLS_CERT_FILE: "/etc/zero/cert.pem",
        TLS_KEY_FILE: "/etc/zero/key.pem",
      },
      [AuthService],
    );
    expect(config.rateLimit?.limits).toEqual({
      default: { limit: 300, periodMs: 300_000 },
      routes: [
        { pattern: "zero.auth.v1.AuthService/Login", limit: { limit: 3, periodMs: 60_000 } },
        { pattern: "*/GetJwks", limit: { limit: 1000, periodMs: 3_600_000 } },
      ],
      users: { "user-42": { limit: 10, periodMs: 1000 } },
    });
    expect(config.routeTimeouts).toEqual([{ pattern: "*/Login", timeoutMs: 5000 }]);
    expect(config.trustedProxies).toEqual(["10.0.0.0/8", "::1"]);
    expect(config.cors.allowedOrigins).toEqual(["https://shop.example.com"]);
    expect(config.tls).toEqual({ certFile: "/etc/zero/cert.pem", keyFile: "/etc/zero/key.pem" });
  });

  it("turns rate limiting off on request", () => {
    expect(loadConfig({ RATE_LIMIT_ENABLED: "false" }, [AuthService]).rateLimit).toBeUndefined();
  });

  it("reports every problem at once, naming the variable", () => {
    const problems = problemsOf({
      PORT: "x",
      MAX_BODY_BYTES: "1",
      TESTING_URL: "not a url",
      RATE_LIMIT_DEFAULT: "lots",
      RATE_LIMIT_ROUTES: "*/Login",
      TRUSTED_PROXIES: "10.0.0.0/33",
      TLS_CERT_FILE: "/cert.pem",
      ROUTE_TIMEOUTS: "*/Login=soon",
    });
    expect(problems).toHaveLength(8);
    for (const name of [
      "PORT",
      "MAX_BODY_BYTES",
      "TESTING_URL",
      "RATE_LIMIT_DEFAULT",
      "RATE_LIMIT_ROUTES",
      "TRUSTED_PROXIES",
      "TLS_KEY_FILE",
      "ROUTE_TIMEOUTS",
    ]) {
      expect(problems.some((problem) => problem.includes(name))).toBe(true);
    }
  });

  it("names upstreams after the proto package", () => {
    expect(upstreamNameOf(AuthService)).toBe("auth");
    expect(upstreamNameOf(EchoService)).toBe("testing");
  });
});
