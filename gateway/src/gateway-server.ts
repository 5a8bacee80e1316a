import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { createRegistry } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import {
  INVALID_SPAN_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  trace,
  type Span,
  type SpanContext,
} from "@opentelemetry/api";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError } from "@zero/kit/errors";
import { keepByteOrderMarks } from "@zero/kit/text-encoding";
import { requestIdContextKey, type Logger } from "@zero/kit/log";
import { createAuthTokenVerifier } from "@zero/kit/auth-token-verifier";
import type { TokenVerifier } from "@zero/kit/principal";
import { createTokenRevocations, withRevocationCheck } from "@zero/kit/token-revocations";
import { startListener } from "@zero/kit/listener";
import { withVerifiedTokenCache, type VerifiedTokenCacheOptions } from "@zero/kit/verified-token-cache";
import { extractTraceContext } from "@zero/kit/tracing";
import { useSharedAccessorsInAsyncResourceBind } from "./edge/async-resource-bind.js";
import {
  DEFAULT_OPERATIONS_NETWORKS,
  createClientAddressResolver,
  createNetworkList,
} from "./edge/client-address.js";
import { createCorsPolicy, type CorsOptions } from "./edge/cors.js";
import { clientTimeoutMs, malformedTimeout } from "./edge/deadline.js";
import { createEdgeCalls } from "./edge/edge-call.js";
import { createRateLimitPolicy, type RateLimitConfig } from "./edge/rate-limit-policy.js";
import { createRateLimiter, type RateLimiter } from "./edge/rate-limiter.js";
import { createRouteTimeouts, type RouteTimeoutRule } from "./edge/route-timeouts.js";
import { securityHeaders } from "./edge/security-headers.js";
import { asConnectError } from "./error-body.js";
import { createEdgeAccess } from "./edge-access.js";
import { createEdgeReflection } from "./edge-reflection.js";
import { createGatewayMetrics } from "./gateway-metrics.js";
import {
  requestHeader,
  sendHttpError,
  sendJson,
  type Exchange,
  type GatewayRequest,
  type GatewayResponse,
} from "./http-exchange.js";
import { createPassthrough } from "./passthrough.js";
import { discardRequestBody } from "./request-body.js";
import { createRestHandler } from "./rest-handler.js";
import { createRouteTable, type RouteMatch, type RouteTable } from "./route-table.js";
import { sendRpcError, type RpcProtocol } from "./rpc-error-response.js";
import { createUpstreamHealth } from "./upstream-health.js";
import { createUpstreams, type ResilienceOptions, type Upstream } from "./upstreams.js";

export interface GatewayOptions {
  /** Every service the gateway may route: REST from their `google.api.http` rules, RPCs by name. */
  services: readonly DescService[];
  /**
   * Upstream name (`auth` for `zero.auth.v1`) → base URL, or several (comma-separated or an
   * array) for as many instances. A service without one is not routed.
   */
  upstreamUrls: Readonly<Record<string, string | readonly string[]>>;
  logger: Logger;
  /** 0 picks a free port (tests). */
  port: number;
  /** Default all IPv4 interfaces. */
  host?: string;
  /** PEM certificate and key: the port then serves TLS (ALPN h2 + http/1.1) and sends HSTS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Verifies bearer tokens for USER/ADMIN methods. Default: the kit verifier over auth's GetJwks. */
  verifier?: TokenVerifier;
  /** Issuer and audience for the default verifier; default `zero-auth` / `zero`. */
  tokenIssuer?: string;
  tokenAudience?: string;
  /**
   * The edge's cache of verified tokens (default 10 000 tokens, each until its `exp`, no longer than
   * `maxTtlMs`); `false` verifies every request. The default verifier caches by itself and also drops
   * a token once its key leaves auth's JWKS; an injected `verifier` is wrapped, `maxTtlMs` default 60 s.
   */
  tokenCache?: VerifiedTokenCacheOptions | false;
  /** REST bodies above this get 413; default 1 MiB. */
  maxBodyBytes?: number;
  /** Default deadline of upstream calls the client set none for; default 30 s. */
  upstreamTimeoutMs?: number;
  /** Per-RPC default deadlines (first match wins), before `upstreamTimeoutMs`. */
  routeTimeouts?: readonly RouteTimeoutRule[];
  /**
   * Refuse access tokens auth has revoked (logout, password change, reset, deactivation) at the
   * edge, from auth's revocation list in Redis — otherwise a signed-out token stays valid for the
   * rest of its 15 minutes at every service but auth. Absent = off. If Redis is unreachable,
   * unexpired tokens are accepted (logged once): the same trade auth documents.
   */
  tokenRevocation?: { redisUrl: string; accessTokenTtlSeconds: number };
  /** Rate limiting in Redis; absent = off. */
  rateLimit?: { redisUrl: string; limits: RateLimitConfig; commandTimeoutMs?: number };
  /** Absent or an empty allow-list: no CORS headers, preflights refused. */
  cors?: CorsOptions;
  /** CIDRs whose `X-Forwarded-For/Proto/Host` are believed. */
  trustedProxies?: readonly string[];
  /**
   * CIDRs of the clients that may read `/metrics` and `/health/<service>` (upstream addresses,
   * instance states); others get 404. Default DEFAULT_OPERATIONS_NETWORKS: loopback and private.
   */
  operationsNetworks?: readonly string[];
  /** Circuit breakers, retry budget, and the period of active health checks (default 5 s; 0 = none). */
  resilience?: ResilienceOptions & { healthCheckIntervalMs?: number };
  /** One log line per request; default true. */
  accessLog?: boolean;
}

export interface Gateway {
  port: number;
  /** `http://127.0.0.1:port` (`https://` with TLS) when bound to all interfaces. */
  url: string;
  routes: RouteTable;
  /**
   * Drains: `/readyz` turns 503, no new connections, HTTP/2 clients get GOAWAY, in-flight requests
   * may finish; whatever is still open after `deadlineMs` (default 10 s) is cut. Then the upstream
   * connections close.
   */
  close(deadlineMs?: number): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
// A caller-supplied request id is kept only when short and plain, so it is safe to log and forward.
const REQUEST_ID = /^[\w.:-]{1,128}$/;
const PROCEDURE = /^\/([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/;

const tracer = trace.getTracer("@zero/gateway");

/** The span context, when it belongs to a trace (without an SDK every span has the invalid one). */
function tracedSpanContext(spanContext: SpanContext | undefined): SpanContext | undefined {
  // The shared invalid context is told apart without validating ids.
  return spanContext !== undefined && spanContext !== INVALID_SPAN_CONTEXT && isSpanContextValid(spanContext)
    ? spanContext
    : undefined;
}

/** What a request addresses, once resolved: for rate limits, logs and metrics. */
interface Operation {
  /** `package.Service/Method`. */
  readonly rpc: string;
  /** For metrics and logs: the route template (`POST /v1/echo`) or the RPC name. */
  readonly label: string;
  readonly upstream: string | undefined;
  /** The REST route matched (handed to the REST handler, which would otherwise match it again). */
  readonly route?: RouteMatch;
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  keepByteOrderMarks();
  const { logger } = opts;
  // Every upstream call opens an HTTP/2 stream, and Node 20 pays ~12 µs per stream for a deprecated
  // property in it: replaced by an equivalent (edge/async-resource-bind.ts).
  useSharedAccessorsInAsyncResourceBind();
  const tls = opts.tls !== undefined;
  const metrics = createGatewayMetrics();
  const edgeCalls = createEdgeCalls();
  const routes = createRouteTable(opts.services);
  const upstreams = createUpstreams({
    services: opts.services,
    urls: opts.upstreamUrls,
    timeoutFor: createRouteTimeouts(opts.routeTimeouts ?? []),
    defaultTimeoutMs: opts.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    edgeCallOf: edgeCalls.lookup,
    observer: metrics,
    // A REST body is held to the limit as JSON and again once encoded for the service.
    maxRequestBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    ...opts.resilience,
  });
  for (const service of upstreams.unrouted) {
    logger.warn({ service: service.typeName }, "service not routed: its <NAME>_URL is not configured");
  }
  const cachedVerifier =
    opts.verifier === undefined
      ? defaultVerifier(opts, upstreams.byName("auth"))
      : opts.tokenCache === false
        ? opts.verifier
        : withVerifiedTokenCache(opts.verifier, opts.tokenCache);
  // After the cache: the signature is checked once per token, revocation on every request.
  const revocationRedis = opts.tokenRevocation
    ? new Redis(opts.tokenRevocation.redisUrl, {
        lazyConnect: false,
        maxRetriesPerRequest: 1,
        commandTimeout: 200,
        enableOfflineQueue: false,
        // One revocation lookup per request: batched per event-loop turn, like the rate limiter's.
        enableAutoPipelining: true,
      })
    : undefined;
  revocationRedis?.on("error", () => undefined); // reported by the revocation check itself, once
  const verifier =
    cachedVerifier === undefined || revocationRedis === undefined || opts.tokenRevocation === undefined
      ? cachedVerifier
      : revocationChecked(
          cachedVerifier,
          revocationRedis,
          opts.tokenRevocation.accessTokenTtlSeconds,
          logger,
        );
  const access = createEdgeAccess({ verifier });
  const registry = createRegistry(...opts.services.map((s) => s.file));
  const rest = createRestHandler({
    routes,
    upstreams,
    access,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    timeoutMs: opts.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    registry,
  });
  const passthrough = createPassthrough({
    upstreams,
    access,
    reflection: createEdgeReflection(opts.services),
  });
  const health = createUpstreamHealth({
    upstreams,
    logger,
    ...(opts.resilience?.healthCheckIntervalMs === undefined
      ? {}
      : { intervalMs: opts.resilience.healthCheckIntervalMs }),
    onResult: (upstream, instance, serving) => metrics.health(upstream, instance, serving),
  });
  const clientAddresses = createClientAddressResolver(opts.trustedProxies ?? []);
  const operationsClients = createNetworkList(opts.operationsNetworks ?? DEFAULT_OPERATIONS_NETWORKS);
  const cors = opts.cors && opts.cors.allowedOrigins.length > 0 ? createCorsPolicy(opts.cors) : undefined;
  const headers = securityHeaders({ tls });
  const rateLimitPolicy = opts.rateLimit ? createRateLimitPolicy(opts.rateLimit.limits) : undefined;
  const limiter: RateLimiter | undefined = opts.rateLimit
    ? createRateLimiter({
        redisUrl: opts.rateLimit.redisUrl,
        logger,
        ...(opts.rateLimit.commandTimeoutMs === undefined
          ? {}
          : { commandTimeoutMs: opts.rateLimit.commandTimeoutMs }),
        onBackendChange: (backend) => metrics.rateLimitBackend(backend),
      })
    : undefined;
  await limiter?.connected(2_000);
  // The access line is built from fields that cannot hold secrets (no headers, bodies or query
  // strings), so it skips the logger's redaction pass — a tenth of the gateway's own CPU per request.
  const accessLogger = opts.accessLog === false ? undefined : logger.child({}, { redact: [] });
  let draining = false;

  /** The gateway's own endpoints; true when it answered. */
  const serveOperational = (exchange: Exchange, clientIp: string): boolean => {
    const method = exchange.req.method;
    if (method !== "GET" && method !== "HEAD") return false;
    const path = exchange.path;
    // What only operators need — upstream addresses, each instance's state, every metric — is
    // not for the internet: answered as if it did not exist.
    if ((path === "/metrics" || path.startsWith("/health/")) && path !== "/health/ready") {
      if (!operationsClients.has(clientIp)) {
        sendHttpError(exchange, new ConnectError(`no route for ${method} ${path}`, Code.NotFound));
        return true;
      }
    }
    if (path === "/healthz") {
      sendJson(exchange, 200, { status: "ok" });
      return true;
    }
    if (path === "/readyz" || path === "/health/ready") {
      // Whether this gateway should get traffic: it should unless it is shutting down. A service
      // being down is answered per request (503 for its routes), not by taking the edge away.
      sendJson(exchange, draining ? 503 : 200, { status: draining ? "shutting_down" : "ready" });
      return true;
    }
    if (path === "/health") {
      void health
        .check()
        .then((report) => sendJson(exchange, report.status === "SERVING" ? 200 : 503, report));
      return true;
    }
    if (path.startsWith("/health/")) {
      const name = path.slice("/health/".length);
      void health.checkService(name).then((report) => {
        if (report === undefined) {
          sendHttpError(exchange, new DomainError("not_found", `no upstream service is named "${name}"`));
          return;
        }
        sendJson(exchange, report.status === "SERVING" ? 200 : 503, { service: name, ...report });
      });
      return true;
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => {
          exchange.res.writeHead(200, { "content-type": metrics.registry.contentType });
          exchange.res.end(text);
        },
        (error: unknown) => {
          logger.error({ err: error }, "collecting metrics failed");
          sendHttpError(exchange, new ConnectError("collecting metrics failed", Code.Internal));
        },
      );
      return true;
    }
    return false;
  };

  /** The RPC a request addresses (REST route or RPC path); undefined when it matches none. */
  const operationOf = (
    protocol: RpcProtocol | undefined,
    method: string,
    path: string,
  ): Operation | undefined => {
    let serviceName: string;
    let methodName: string;
    let label: string | undefined;
    let route: RouteMatch | undefined;
    if (protocol) {
      const match = PROCEDURE.exec(path);
      if (!match) return undefined;
      serviceName = match[1] as string;
      methodName = match[2] as string;
    } else {
      let lookup;
      try {
        lookup = routes.lookup(method, path);
      } catch {
        return undefined; // malformed path: the REST handler answers it
      }
      if (lookup.kind !== "found") return undefined;
      route = lookup;
      serviceName = lookup.route.service.typeName;
      methodName = lookup.route.method.name;
      label = `${lookup.route.httpMethod} ${lookup.route.template.source}`;
    }
    const resolved = upstreams.resolve(serviceName, methodName);
    if (!resolved) return undefined;
    const rpc = `${serviceName}/${methodName}`;
    return { rpc, label: label ?? rpc, upstream: resolved.upstream.name, ...(route ? { route } : {}) };
  };

  /** Charges the request to its rate-limit buckets; answers 429 itself and returns false when refused. */
  const admit = async (
    exchange: Exchange,
    protocol: RpcProtocol | undefined,
    operation: Operation | undefined,
    clientIp: string,
  ): Promise<boolean> => {
    if (!limiter || !rateLimitPolicy) return true;
    const subject = rateLimitPolicy.hasUserOverrides
      ? (await access.identify(requestHeader(exchange.req, "authorization")))?.subject
      : undefined;
    const decision = await limiter.check(rateLimitPolicy.bucketsFor(operation?.rpc, clientIp, subject));
    const { res } = exchange;
    // draft-ietf-httpapi-ratelimit-headers-06: quota, what is left, seconds until it is full again.
    res.setHeader("ratelimit-limit", decision.limit);
    res.setHeader("ratelimit-remaining", decision.remaining);
    res.setHeader("ratelimit-reset", Math.ceil(decision.resetMs / 1000));
    res.setHeader("ratelimit-policy", `${decision.limit};w=${Math.round(decision.periodMs / 1000)}`);
    if (decision.allowed) return true;

    const retryAfter = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    res.setHeader("retry-after", retryAfter);
    const error = new DomainError(
      "resource_exhausted",
      `too many requests: the limit is ${decision.limit} per ${Math.round(decision.periodMs / 1000)} s; retry after ${retryAfter} s`,
      { reason: "RATE_LIMITED" },
    );
    refuse(exchange, protocol, error);
    metrics.rateLimited(operation?.rpc ?? "unmatched");
    return false;
  };

  /** Answers a request the edge refuses before routing it, in the caller's protocol. */
  const refuse = (exchange: Exchange, protocol: RpcProtocol | undefined, error: DomainError): void => {
    discardRequestBody(exchange.req);
    if (protocol) {
      const contentType = requestHeader(exchange.req, "content-type") ?? "application/grpc";
      sendRpcError(exchange, protocol, asConnectError(error).error, contentType);
    } else {
      sendHttpError(exchange, error);
    }
  };

  const onRequest = (req: GatewayRequest, res: GatewayResponse): void => {
    const startedAt = performance.now();
    const rawUrl = originForm(req.url ?? "/");
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = q < 0 ? "" : rawUrl.slice(q + 1);
    const header = (name: string): string | undefined => requestHeader(req, name);
    const incomingId = header("x-request-id");
    const requestId = incomingId !== undefined && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const client = clientAddresses.resolve(req.socket.remoteAddress, header, tls);
    const method = req.method ?? "GET";

    for (const [name, value] of path.startsWith("/docs") ? headers.common : headers.api) {
      res.setHeader(name, value);
    }
    const origin = header("origin");
    if (cors && origin !== undefined) {
      for (const [name, value] of cors.responseHeaders(origin)) res.setHeader(name, value);
    }

    const aborted = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborted.abort(new Error("the client went away"));
    });
    const exchange: Exchange = {
      req,
      res,
      path,
      query,
      requestId,
      signal: aborted.signal,
      logger,
    };

    const finish = (label: string, operation: Operation | undefined, protocol: string, span?: Span): void => {
      const status = exchange.outcomeStatus ?? res.statusCode;
      const seconds = (performance.now() - startedAt) / 1000;
      metrics.observe({ protocol, route: label, status }, seconds);
      if (accessLogger) {
        // Never bodies, headers or query strings: they carry tokens and personal data.
        accessLogger.info(
          {
            method,
            route: label,
            status,
            duration_ms: Math.round(seconds * 1e6) / 1e3,
            request_id: requestId,
            // From a log line to the whole trace (only routed requests have a span).
            trace_id: span && tracedSpanContext(span.spanContext())?.traceId,
            upstream: operation?.upstream,
            client_ip: client.ip,
            protocol,
          },
          "request",
        );
      }
    };

    const preflight = cors?.preflight(method, header);
    if (preflight !== undefined || (method === "OPTIONS" && header("access-control-request-method"))) {
      discardRequestBody(req);
      if (preflight?.allowed) {
        res.writeHead(204, preflight.headers);
        res.end();
      } else {
        const reason =
          preflight?.allowed === false
            ? preflight.reason
            : "cross-origin requests are not enabled on this gateway";
        sendHttpError(exchange, new DomainError("permission_denied", reason, { reason: "CORS_NOT_ALLOWED" }));
      }
      finish("preflight", undefined, "rest");
      return;
    }
    if (serveOperational(exchange, client.ip)) return;

    // What services are told about the client, replacing whatever the client claimed (pass-through
    // copies request headers as they are).
    req.headers["x-forwarded-for"] = client.ip;
    req.headers["x-forwarded-proto"] = client.proto;
    if (client.host !== undefined) req.headers["x-forwarded-host"] = client.host;
    delete req.headers.forwarded;
    delete req.headers["x-real-ip"];
    edgeCalls.register(aborted.signal, {
      clientTimeoutMs: clientTimeoutMs(header),
      clientIp: client.ip,
      proto: client.proto,
      host: client.host,
      safeHttpMethod: method === "GET" || method === "HEAD",
    });

    const protocol = passthrough.protocolOf(req, path, query);
    const operation = operationOf(protocol, method, path);
    const parent = extractTraceContext(header);
    const span = tracer.startSpan(
      protocol ? path.slice(1) : method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": method,
          "url.path": path,
          "network.protocol.version": req.httpVersion,
          "zero.gateway.protocol": protocol ?? "rest",
        },
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span).setValue(requestIdContextKey, requestId);

    const serve = (): Promise<string> => {
      const refusal = ambiguousRequest(req, header);
      if (refusal !== undefined) {
        refuse(exchange, protocol, refusal);
        return Promise.resolve(operation?.label ?? "unmatched");
      }
      return context.with(ctx, () =>
        protocol ? passthrough.handle(exchange, protocol) : rest(exchange, operation?.route),
      );
    };
    // Without a limiter there is nothing to wait for: no async wrapper (its promise and await are a
    // turn of the microtask queue).
    const handle = (): Promise<string> =>
      limiter
        ? admit(exchange, protocol, operation, client.ip).then((admitted) =>
            admitted ? serve() : (operation?.label ?? "unmatched"),
          )
        : serve();

    const record = (label: string): void => {
      try {
        if (!protocol && label !== "unmatched") span.updateName(label);
        span.setAttribute("http.route", label);
        span.setAttribute("http.response.status_code", res.statusCode);
        if ((exchange.outcomeStatus ?? res.statusCode) >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        finish(label, operation, protocol ?? "rest", span);
      } catch (error) {
        logger.error({ err: error }, "recording a request failed");
      }
    };
    // One reaction, not a chain of three: two promises and microtask turns less per request.
    handle().then(record, (error: unknown) => {
      // Handlers answer their own errors; reaching here is a bug. Answer 500 rather than hang.
      logger.error({ err: error, path }, "unhandled error in the gateway");
      try {
        if (!res.headersSent) {
          sendHttpError(exchange, new ConnectError("internal error", Code.Internal));
        } else {
          res.destroy();
        }
      } catch (answerError) {
        logger.error({ err: answerError }, "answering a failed request failed");
      }
      record("unmatched");
    });
  };

  // One port, two protocols, like every Zero service (TLS with ALPN when configured).
  let listener: Awaited<ReturnType<typeof startListener>>;
  try {
    listener = await startListener({
      name: "gateway",
      ...(opts.host === undefined ? {} : { host: opts.host }),
      port: opts.port,
      logger,
      onRequest,
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    });
  } catch (error) {
    // Not listening (port taken, bad certificate): release what was opened so far.
    health.stop();
    upstreams.close();
    await limiter?.close();
    revocationRedis?.disconnect();
    throw error;
  }
  const url = listener.url;
  logger.info(
    {
      url,
      routes: routes.routes.length,
      upstreams: Object.fromEntries(upstreams.list.map((u: Upstream) => [u.name, u.url])),
      rate_limit: opts.rateLimit ? "redis" : "off",
      tls,
    },
    "gateway listening",
  );

  const shutdown = async (deadlineMs: number): Promise<void> => {
    logger.info({ deadline_ms: deadlineMs }, "gateway draining");
    draining = true;
    await listener.drain(deadlineMs);
    health.stop();
    upstreams.close();
    await limiter?.close();
    revocationRedis?.disconnect();
    logger.info("gateway stopped");
  };

  let closing: Promise<void> | undefined;
  return {
    port: listener.port,
    url,
    routes,
    close(deadlineMs = 10_000) {
      closing ??= shutdown(deadlineMs);
      return closing;
    },
  };
}

function revocationChecked(
  verifier: TokenVerifier,
  redis: Redis,
  accessTokenTtlSeconds: number,
  logger: Logger,
): TokenVerifier {
  const revocations = createTokenRevocations({ redis, accessTokenTtlSeconds, logger });
  return withRevocationCheck(verifier, (claims) => revocations.isRevoked(claims));
}

/**
 * The kit verifier fed by auth's GetJwks through the gateway's own connection to auth, with its own
 * cache of verified tokens (which knows when a key leaves the JWKS, unlike a wrapper).
 */
function defaultVerifier(opts: GatewayOptions, auth: Upstream | undefined): TokenVerifier | undefined {
  if (!auth) return undefined;
  return createAuthTokenVerifier({
    transport: auth.transport,
    issuer: opts.tokenIssuer ?? "zero-auth",
    audience: opts.tokenAudience ?? "zero",
    cache: opts.tokenCache ?? {},
  });
}

/**
 * The request target as a path and query. HTTP/1.1 servers must also accept the absolute form
 * (`GET http://host/v1/x HTTP/1.1`, RFC 9112 §3.2.2), which proxies send; its authority is ignored.
 */
function originForm(target: string): string {
  if (target.startsWith("/")) return target;
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
  if (!absolute) return target;
  const rest = target.slice(absolute[0].length);
  return rest.startsWith("/") ? rest : `/${rest}`;
}

/**
 * What makes a request mean two things, refused before it is served: several credentials, or a
 * deadline that cannot be read (running it on the route's default would outlast what was meant).
 */
function ambiguousRequest(
  req: GatewayRequest,
  header: (name: string) => string | undefined,
): DomainError | undefined {
  if (severalAuthorizations(req)) {
    return new DomainError(
      "invalid_argument",
      "the request has several Authorization headers: send one (which credential was meant is ambiguous)",
      { reason: "AMBIGUOUS_CREDENTIALS" },
    );
  }
  const badTimeout = malformedTimeout(header);
  return badTimeout === undefined
    ? undefined
    : new DomainError("invalid_argument", badTimeout, { reason: "MALFORMED_TIMEOUT" });
}

/**
 * True when a request carries more than one Authorization header. Node keeps only the first in
 * `headers`, and a service behind the gateway might read another: refused, not guessed.
 */
function severalAuthorizations(req: GatewayRequest): boolean {
  if (req.headers.authorization === undefined) return false;
  const raw = req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 13 && name.toLowerCase() === "authorization" && ++seen > 1) return true;
  }
  return false;
}
