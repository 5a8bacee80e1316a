import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The only place the platform scripts read the environment. scripts/infra.sh resolves the
// infrastructure first and exports the ZERO_* URLs; the plain names are the fallbacks for a
// script run on its own (`pnpm migrate` with the machine's servers).

export type PlatformConfig = ReturnType<typeof loadPlatformConfig>;

export function loadPlatformConfig(env: Record<string, string | undefined> = process.env) {
  const problems: string[] = [];
  const url = (value: string, name: string): string => {
    if (!URL.canParse(value)) problems.push(`${name} is not a URL`);
    return value;
  };
  const positive = (value: string, name: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) problems.push(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
  const logFormat = env["ZERO_LOG_FORMAT"] ?? "pretty";
  if (logFormat !== "pretty" && logFormat !== "json") problems.push(`ZERO_LOG_FORMAT must be pretty or json`);
  const config = {
    root: join(dirname(fileURLToPath(import.meta.url)), ".."),
    /** An admin URL: the services' own URLs are derived from its host and port. */
    postgresUrl: url(
      env["ZERO_POSTGRES_URL"] ?? env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres",
      "ZERO_POSTGRES_URL",
    ),
    redisUrl: url(env["ZERO_REDIS_URL"] ?? env["REDIS_URL"] ?? "redis://127.0.0.1:6379", "ZERO_REDIS_URL"),
    natsUrl: url(env["ZERO_NATS_URL"] ?? env["NATS_URL"] ?? "nats://127.0.0.1:4222", "ZERO_NATS_URL"),
    logLevel: env["LOG_LEVEL"] ?? "info",
    logFormat: logFormat as "pretty" | "json",
    readyTimeoutMs: positive(env["ZERO_READY_TIMEOUT_SECONDS"] ?? "90", "ZERO_READY_TIMEOUT_SECONDS") * 1000,
    /** Local instances scripts/infra.sh started for this run: stopped again on the way out. */
    infraStarted: (env["ZERO_INFRA_STARTED"] ?? "").split(/\s+/).filter(Boolean),
    /** Children inherit the rest (PATH, OTEL_*, …) but never our own DATABASE_URL or PORT. */
    inheritedEnv: Object.fromEntries(
      Object.entries(env).filter(([name]) => name !== "DATABASE_URL" && name !== "PORT"),
    ),
    color: env["NO_COLOR"] === undefined && process.stdout.isTTY,
    /** Per-user state outside any checkout (scripts/local-secrets.ts keeps the dev secrets there). */
    stateDir: env["XDG_STATE_HOME"] ?? join(homedir(), ".local", "state"),
  };
  if (problems.length > 0) throw new Error(`bad configuration:\n  ${problems.join("\n  ")}`);
  return Object.freeze(config);
}
