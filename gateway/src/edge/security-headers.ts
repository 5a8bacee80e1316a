/**
 * Headers on every gateway response that make a browser treat it strictly: no MIME sniffing, no
 * framing (clickjacking), no referrer leaking API URLs, and — only when the gateway itself serves
 * TLS, since the header is ignored over plain HTTP and would pin a host that cannot serve HTTPS —
 * HSTS. API responses also get a CSP that allows nothing; the docs page (`/docs`) sets its own.
 */
export function securityHeaders(opts: { tls: boolean }): {
  readonly common: readonly (readonly [string, string])[];
  /** For JSON/RPC responses only: an API answer never needs to load or run anything. */
  readonly api: readonly (readonly [string, string])[];
} {
  const common: [string, string][] = [
    ["x-content-type-options", "nosniff"],
    ["x-frame-options", "DENY"],
    ["referrer-policy", "no-referrer"],
  ];
  if (opts.tls) common.push(["strict-transport-security", "max-age=31536000; includeSubDomains"]);
  return {
    common,
    api: [...common, ["content-security-policy", "default-src 'none'; frame-ancestors 'none'"]],
  };
}
