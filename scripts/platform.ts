import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { PlatformConfig } from "./config.js";
import type { LocalSecrets } from "./local-secrets.js";

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
    env: ({ secret }) => ({ AUTH_KEY_ENCRYPTION_KEY: secret("AUTH_KEY_ENCRYPTION_KEY", 32) }),
  },
];

export const gateway: ServiceSpec = { name: "gateway", port: 8080 };

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
