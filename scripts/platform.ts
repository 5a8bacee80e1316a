import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { PlatformConfig } from "./config.js";
import { DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD_SECRET } from "./demo-data.js";
import { serviceClients, serviceSecretName, type LocalSecrets } from "./local-secrets.js";

/** What a service's env line may use: the resolved infrastructure and the local secrets. */
export interface PlatformContext {
  config: PlatformConfig;
  secret: LocalSecrets["secret"];
}

export interface ServiceSpec {
  name: string;
  port: number;
  /** Variables of this service only; the common ones (see `commonEnv`) are always set. */
  env?: (ctx: PlatformContext) => Record<string, string>;
}

/**
 * Every service `scripts/start.sh` runs, started together before the gateway. Adding a service is
 * one line here (ports from DESIGN.md). A service with `src/db/migrations` gets its own role and
 * database `zero_<name>` (scripts/infra.sh creates them), a DATABASE_URL for them, and
 * `main.ts migrate` before it starts.
 */
export const services: readonly ServiceSpec[] = [
  {
    name: "auth",
    port: 9001,
    env: ({ secret }) => ({
      AUTH_KEY_ENCRYPTION_KEY: secret("AUTH_KEY_ENCRYPTION_KEY", 32),
      AUTH_SERVICE_CLIENTS: serviceClients(
        services.map((s) => s.name),
        secret,
      ),
      // The demo admin (scripts/demo-data.ts prints it); created only while no admin exists.
      AUTH_BOOTSTRAP_ADMIN_EMAIL: DEMO_ADMIN_EMAIL,
      AUTH_BOOTSTRAP_ADMIN_PASSWORD: secret(DEMO_ADMIN_PASSWORD_SECRET, 18),
    }),
  },
  { name: "users", port: 9002 },
  // The simulated provider signs its webhooks with this secret (PAYMENTS_WEBHOOK_SECRETS: current first).
  {
    name: "payments",
    port: 9006,
    env: ({ secret }) => ({ PAYMENTS_WEBHOOK_SECRETS: secret("PAYMENTS_WEBHOOK_SECRET", 32) }),
  },
  // SMTP_URL (optional, from the environment) sends real mail; without it messages become .eml files.
  {
    name: "notifications",
    port: 9007,
    env: ({ config }) => ({ MAIL_DIR: join(config.root, ".local/mail") }),
  },
  // Diagnostic: echoes requests back (services/echo/README.md). No data, no database.
  { name: "echo", port: 9099 },
];

export const gateway: ServiceSpec = {
  name: "gateway",
  port: 8080,
  // The gateway names upstreams by proto package: echo serves `zero.testing.v1`.
  env: () => ({ TESTING_URL: baseUrl(services.find((s) => s.name === "echo")?.port ?? 9099) }),
};

/** One process to run: a service, the gateway, or a service's migration. */
export interface PlannedProcess {
  name: string;
  port: number;
  entry: string;
  env: Record<string, string>;
  hasDatabase: boolean;
}

export interface Plan {
  services: PlannedProcess[];
  gateway: PlannedProcess | undefined;
  /** Listed services whose main.ts does not exist yet, and main.ts files nobody listed. */
  warnings: string[];
}

export const baseUrl = (port: number): string => `http://127.0.0.1:${port}`;

/** Every process gets the infrastructure, the token settings and every service's URL. */
function commonEnv(config: PlatformConfig): Record<string, string> {
  return {
    NATS_URL: config.natsUrl,
    REDIS_URL: config.redisUrl,
    LOG_LEVEL: config.logLevel,
    AUTH_ISSUER: "zero-auth",
    AUTH_AUDIENCE: "zero",
    ...Object.fromEntries(
      services.map((s) => [`${s.name.toUpperCase().replaceAll("-", "_")}_URL`, baseUrl(s.port)]),
    ),
  };
}

/** The service's own database URL: role = database = password = zero_<name> (dev only). */
export function serviceDatabaseUrl(config: PlatformConfig, service: string): string {
  const name = `zero_${service.replaceAll("-", "_")}`;
  const url = new URL(config.postgresUrl);
  url.username = name;
  url.password = name;
  url.pathname = `/${name}`;
  return url.toString();
}

export function planPlatform(ctx: PlatformContext): Plan {
  const { root } = ctx.config;
  const warnings: string[] = [];
  const plan = (spec: ServiceSpec, dir: string): PlannedProcess => {
    const hasDatabase = existsSync(join(root, dir, "src/db/migrations"));
    return {
      name: spec.name,
      port: spec.port,
      entry: join(dir, "src/main.ts"),
      hasDatabase,
      env: {
        ...ctx.config.inheritedEnv,
        ...commonEnv(ctx.config),
        PORT: String(spec.port),
        ...(hasDatabase ? { DATABASE_URL: serviceDatabaseUrl(ctx.config, spec.name) } : {}),
        // Each service's credential for service tokens (INTERNAL calls); auth knows its hash.
        ...(spec === gateway ? {} : { SERVICE_CLIENT_SECRET: ctx.secret(serviceSecretName(spec.name), 32) }),
        // Services listen on loopback only: the gateway is the one way in, so nobody on the network
        // reaches a service port past its checks (revoked tokens, rate limits). HOST overrides.
        ...(spec === gateway ? {} : { HOST: ctx.config.inheritedEnv["HOST"] ?? "127.0.0.1" }),
        ...spec.env?.(ctx),
      },
    };
  };
  const exists = (p: PlannedProcess): boolean => {
    if (existsSync(join(root, p.entry))) return true;
    warnings.push(`${p.name}: ${p.entry} does not exist yet, not started`);
    return false;
  };
  const present = services.map((s) => plan(s, join("services", s.name))).filter(exists);
  const edge = plan(gateway, "gateway");
  for (const dir of readdirSync(join(root, "services"))) {
    if (existsSync(join(root, "services", dir, "src/main.ts")) && !services.some((s) => s.name === dir)) {
      warnings.push(`services/${dir} is not listed in scripts/platform.ts, not started`);
    }
  }
  return { services: present, gateway: exists(edge) ? edge : undefined, warnings };
}
