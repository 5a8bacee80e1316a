/**
 * CORS for browser clients (REST, Connect, gRPC-Web), from an allow-list of origins. A preflight
 * is answered by the gateway itself (never forwarded) and cached by the browser for `maxAgeSeconds`;
 * actual responses to an allowed origin carry `Access-Control-Allow-Origin` and expose the headers
 * a client needs (request id, rate limits, gRPC-Web status). Requests from other origins are
 * served without CORS headers, so the browser withholds the response from the page.
 */
export interface CorsPolicy {
  /** Response headers for a non-preflight request from `origin` (empty when not allowed). */
  responseHeaders(origin: string | undefined): readonly (readonly [string, string])[];
  /**
   * The answer to a preflight: 204 with the grants, or 403 naming what is not allowed. Undefined
   * when the request is not a preflight (an `OPTIONS` without `Access-Control-Request-Method`).
   */
  preflight(
    method: string | undefined,
    header: (name: string) => string | undefined,
  ): PreflightAnswer | undefined;
}

export type PreflightAnswer =
  | { readonly allowed: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly allowed: false; readonly reason: string };

export interface CorsOptions {
  /** Exact origins (`https://shop.example.com`), or `*` for any origin (then without credentials). */
  readonly allowedOrigins: readonly string[];
  readonly maxAgeSeconds: number;
  /** Lets pages send cookies/HTTP auth; never combined with `*`. Default false (Zero uses bearer tokens). */
  readonly allowCredentials?: boolean;
}

const ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
// What Zero's clients send: REST, Connect (+ its GET form), gRPC-Web, tracing, idempotency.
const ALLOWED_HEADERS = new Set([
  "accept",
  "authorization",
  "content-type",
  "x-request-id",
  "idempotency-key",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-accept-encoding",
  "connect-content-encoding",
  "grpc-timeout",
  "grpc-accept-encoding",
  "x-grpc-web",
  "x-user-agent",
  "traceparent",
  "tracestate",
]);
const EXPOSED_HEADERS = [
  "x-request-id",
  "retry-after",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
  "ratelimit-policy",
  "idempotent-replayed",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
].join(", ");

export function createCorsPolicy(opts: CorsOptions): CorsPolicy {
  const anyOrigin = opts.allowedOrigins.includes("*");
  const origins = new Set(opts.allowedOrigins.map((origin) => origin.toLowerCase()));
  const credentials = opts.allowCredentials === true && !anyOrigin;
  const isAllowed = (origin: string): boolean => anyOrigin || origins.has(origin.toLowerCase());
  const allowOrigin = (origin: string): string => (anyOrigin ? "*" : origin);

  const baseHeaders = (origin: string): [string, string][] => {
    const headers: [string, string][] = [["access-control-allow-origin", allowOrigin(origin)]];
    // Caches must not serve one origin's answer to another.
    if (!anyOrigin) headers.push(["vary", "Origin"]);
    if (credentials) headers.push(["access-control-allow-credentials", "true"]);
    return headers;
  };

  return {
    responseHeaders(origin) {
      if (origin === undefined || !isAllowed(origin)) return [];
      return [...baseHeaders(origin), ["access-control-expose-headers", EXPOSED_HEADERS]];
    },

    preflight(method, header) {
      const requestedMethod = header("access-control-request-method");
      if (method !== "OPTIONS" || requestedMethod === undefined) return undefined;
      const origin = header("origin");
      if (origin === undefined || !isAllowed(origin)) {
        return {
          allowed: false,
          reason: `the origin ${origin === undefined ? "(none)" : `"${origin}"`} is not allowed to call this API: add it to CORS_ALLOWED_ORIGINS`,
        };
      }
      if (!ALLOWED_METHODS.includes(requestedMethod.toUpperCase())) {
        return {
          allowed: false,
          reason: `the method "${requestedMethod}" is not allowed: use one of ${ALLOWED_METHODS.join(", ")}`,
        };
      }
      const requestedHeaders = (header("access-control-request-headers") ?? "")
        .split(",")
        .map((name) => name.trim().toLowerCase())
        .filter((name) => name !== "");
      const refused = requestedHeaders.filter((name) => !ALLOWED_HEADERS.has(name));
      if (refused.length > 0) {
        return {
          allowed: false,
          reason: `the request header(s) ${refused.join(", ")} may not be sent cross-origin`,
        };
      }
      const headers: Record<string, string> = Object.fromEntries(baseHeaders(origin));
      headers["access-control-allow-methods"] = ALLOWED_METHODS.join(", ");
      if (requestedHeaders.length > 0) headers["access-control-allow-headers"] = requestedHeaders.join(", ");
      headers["access-control-max-age"] = String(opts.maxAgeSeconds);
      headers.vary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
      return { allowed: true, headers };
    },
  };
}
