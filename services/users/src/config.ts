import { envReader } from "@zero/kit/config";

export type UsersConfig = ReturnType<typeof loadConfig>;

/** The services that keep personal data besides users, asked by the GDPR export (DESIGN.md). */
export const DEFAULT_PERSONAL_DATA_SERVICES = ["auth", "payments", "notifications"];

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const authUrl = e.url("AUTH_URL", "http://127.0.0.1:9001");
  const names = e.list("PERSONAL_DATA_SERVICES", DEFAULT_PERSONAL_DATA_SERVICES).filter((n) => n !== "users");
  // Each listed service is asked at its `<NAME>_URL`; one without a URL is not deployed here and is
  // reported at start-up (see users-server.ts), so an operator sees what the export covers.
  const personalDataSources: { name: string; url: string }[] = [];
  const unconfigured: string[] = [];
  for (const name of names) {
    const variable = `${name.toUpperCase().replaceAll("-", "_")}_URL`;
    const url = name === "auth" ? authUrl : e.optional(variable) === undefined ? undefined : e.url(variable);
    if (url === undefined) unconfigured.push(name);
    else personalDataSources.push({ name, url });
  }
  const c = {
    // The interface to listen on; the dev platform binds loopback (only the gateway is public).
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 9002, { min: 0, max: 65535 }),
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_users"),
    natsUrl: e.url("NATS_URL", "nats://127.0.0.1:4222"),
    logLevel: e.string("LOG_LEVEL", "info"),
    authUrl,
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
    // This service's identity towards the others' INTERNAL methods (the export's calls).
    serviceClientId: e.string("SERVICE_CLIENT_ID", "users"),
    serviceClientSecret: e.string("SERVICE_CLIENT_SECRET"),
    personalDataSources: Object.freeze(personalDataSources),
    unconfiguredPersonalDataServices: Object.freeze(unconfigured),
    exportTimeoutMs: e.int("EXPORT_TIMEOUT_MS", 10_000, { min: 100, max: 120_000 }),
    exportMaxConcurrent: e.int("EXPORT_MAX_CONCURRENT", 4, { min: 1, max: 100 }),
  };
  e.done();
  return Object.freeze(c);
}

/** What `main.ts migrate` needs: the database only. */
export function loadMigrationConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    databaseUrl: e.url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/zero_users"),
    logLevel: e.string("LOG_LEVEL", "info"),
  };
  e.done();
  return Object.freeze(c);
}
