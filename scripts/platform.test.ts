import { describe, expect, it } from "vitest";
import { loadPlatformConfig } from "./config.js";
import { gateway, planPlatform, serviceDatabaseUrl, services } from "./platform.js";

const config = loadPlatformConfig({
  ZERO_POSTGRES_URL: "postgres://admin:secret@db.internal:55432/postgres",
  ZERO_REDIS_URL: "redis://127.0.0.1:56379",
  ZERO_NATS_URL: "nats://127.0.0.1:54222",
  DATABASE_URL: "postgres://someone@elsewhere/x",
  PORT: "1234",
  PATH: "/usr/bin",
});
const secret = (name: string): string => `secret-of-${name}`;

describe("planPlatform", () => {
  it("gives every service and the gateway distinct ports", () => {
    const ports = [...services, gateway].map((s) => s.port);
    expect(new Set(ports).size).toBe(ports.length);
  });

  it("derives auth's environment: own database role, infrastructure, service URLs, its secret", () => {
    const auth = planPlatform({ config, secret }).services.find((p) => p.name === "auth");
    expect(auth).toBeDefined();
    expect(auth?.hasDatabase).toBe(true);
    expect(auth?.entry).toBe("services/auth/src/main.ts");
    expect(auth?.env).toMatchObject({
      PORT: "9001",
      DATABASE_URL: "postgres://zero_auth:zero_auth@db.internal:55432/zero_auth",
      NATS_URL: "nats://127.0.0.1:54222",
      REDIS_URL: "redis://127.0.0.1:56379",
      AUTH_URL: "http://127.0.0.1:9001",
      AUTH_ISSUER: "zero-auth",
      AUTH_AUDIENCE: "zero",
      AUTH_KEY_ENCRYPTION_KEY: "secret-of-AUTH_KEY_ENCRYPTION_KEY",
      PATH: "/usr/bin",
    });
  });

  it("never hands the caller's DATABASE_URL or PORT to a process without its own", () => {
    const edge = planPlatform({ config, secret }).gateway;
    expect(edge?.env["PORT"]).toBe("8080");
    expect(edge?.env["DATABASE_URL"]).toBeUndefined();
    expect(edge?.env["AUTH_URL"]).toBe("http://127.0.0.1:9001");
  });

  it("binds services to loopback, so the gateway is the one way in", () => {
    const plan = planPlatform({ config, secret });
    for (const service of plan.services) expect(service.env["HOST"]).toBe("127.0.0.1");
    expect(plan.gateway?.env["HOST"]).toBe(config.inheritedEnv["HOST"]);
  });
});

describe("serviceDatabaseUrl", () => {
  it("uses the admin URL's host and port with the service's own role and database", () => {
    expect(serviceDatabaseUrl(config, "order-history")).toBe(
      "postgres://zero_order_history:zero_order_history@db.internal:55432/zero_order_history",
    );
  });
});

describe("loadPlatformConfig", () => {
  it("reports every bad value at once", () => {
    let message = "";
    try {
      loadPlatformConfig({
        ZERO_POSTGRES_URL: "nope",
        ZERO_LOG_FORMAT: "xml",
        ZERO_READY_TIMEOUT_SECONDS: "-1",
      });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const name of ["ZERO_POSTGRES_URL", "ZERO_LOG_FORMAT", "ZERO_READY_TIMEOUT_SECONDS"]) {
      expect(message).toContain(name);
    }
  });
});
