import { envReader } from "@zero/kit/config";

export type EchoConfig = ReturnType<typeof loadConfig>;

/** Parsed once at start-up; every problem is reported together; the result is frozen. */
export function loadConfig(env: Record<string, string | undefined> = process.env) {
  const e = envReader(env);
  const c = {
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 9099, { min: 0, max: 65535 }),
    logLevel: e.string("LOG_LEVEL", "info"),
    // Where the JWKS comes from: USER and ADMIN methods verify auth's tokens like any service.
    authUrl: e.url("AUTH_URL", "http://127.0.0.1:9001"),
    issuer: e.string("AUTH_ISSUER", "zero-auth"),
    audience: e.string("AUTH_AUDIENCE", "zero"),
  };
  e.done();
  return Object.freeze(c);
}
