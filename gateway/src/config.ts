import type { DescService } from "@bufbuild/protobuf";
import { envReader } from "@zero/kit/config";

export interface GatewayConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  /** REST bodies above this size are refused with 413 before they are buffered. */
  readonly maxBodyBytes: number;
  /** Deadline for an upstream call made for a REST request. */
  readonly upstreamTimeoutMs: number;
  readonly authIssuer: string;
  readonly authAudience: string;
  /** Upstream name (`auth` for `zero.auth.v1`) → base URL. A service without a URL is not routed. */
  readonly upstreamUrls: Readonly<Record<string, string>>;
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
  const upstreamUrls: Record<string, string> = {};
  for (const name of new Set(services.map(upstreamNameOf))) {
    const variable = `${name.toUpperCase()}_URL`;
    const fallback = defaultUrls[name];
    const url =
      fallback !== undefined || e.optional(variable) !== undefined ? e.url(variable, fallback) : undefined;
    if (url !== undefined) upstreamUrls[name] = url;
  }
  const config: GatewayConfig = {
    host: e.string("HOST", "0.0.0.0"),
    port: e.int("PORT", 8080, { min: 0, max: 65535 }),
    logLevel: e.string("LOG_LEVEL", "info"),
    maxBodyBytes: e.int("MAX_BODY_BYTES", 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    upstreamTimeoutMs: e.int("UPSTREAM_TIMEOUT_MS", 30_000, { min: 100, max: 10 * 60_000 }),
    authIssuer: e.string("AUTH_ISSUER", "zero-auth"),
    authAudience: e.string("AUTH_AUDIENCE", "zero"),
    upstreamUrls: Object.freeze(upstreamUrls),
  };
  e.done();
  return Object.freeze(config);
}
