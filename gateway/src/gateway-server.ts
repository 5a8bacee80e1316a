import { randomUUID } from "node:crypto";
import { createRegistry, toJson } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { requestIdContextKey, type Logger } from "@zero/kit/log";
import { createTokenVerifier, type TokenVerifier } from "@zero/kit/principal";
import { startListener } from "@zero/kit/listener";
import { extractTraceContext, tracingClientInterceptor } from "@zero/kit/tracing";
import { AuthService, JwkSchema } from "@zero/proto/zero/auth/v1/auth_pb";
import { createEdgeAccess } from "./edge-access.js";
import { createGatewayMetrics } from "./gateway-metrics.js";
import {
  requestHeader,
  sendJson,
  type Exchange,
  type GatewayRequest,
  type GatewayResponse,
} from "./http-exchange.js";
import { createPassthrough } from "./passthrough.js";
import { createRestHandler } from "./rest-handler.js";
import { createRouteTable, type RouteTable } from "./route-table.js";
import { createUpstreamHealth } from "./upstream-health.js";
import { createUpstreams } from "./upstreams.js";

export interface GatewayOptions {
  /** Every service the gateway may route: REST from their `google.api.http` rules, RPCs by name. */
  services: readonly DescService[];
  /** Upstream name (`auth` for `zero.auth.v1`) → base URL. A service without one is not routed. */
  upstreamUrls: Readonly<Record<string, string>>;
  logger: Logger;
  /** 0 picks a free port (tests). */
  port: number;
  /** Default all IPv4 interfaces. */
  host?: string;
  /** Verifies bearer tokens for USER/ADMIN methods. Default: the kit verifier over auth's GetJwks. */
  verifier?: TokenVerifier;
  /** Issuer and audience for the default verifier; default `zero-auth` / `zero`. */
  tokenIssuer?: string;
  tokenAudience?: string;
  /** REST bodies above this get 413; default 1 MiB. */
  maxBodyBytes?: number;
  /** Deadline of upstream calls made for REST requests; default 30 s. */
  upstreamTimeoutMs?: number;
}

export interface Gateway {
  port: number;
  /** `http://127.0.0.1:port` when bound to all interfaces. */
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

const tracer = trace.getTracer("@zero/gateway");

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const { logger } = opts;
  const routes = createRouteTable(opts.services);
  const upstreams = createUpstreams({
    services: opts.services,
    urls: opts.upstreamUrls,
    interceptors: [tracingClientInterceptor],
  });
  for (const service of upstreams.unrouted) {
    logger.warn({ service: service.typeName }, "service not routed: its <NAME>_URL is not configured");
  }
  const verifier = opts.verifier ?? defaultVerifier(opts, upstreams.byName("auth"));
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
  const passthrough = createPassthrough({ upstreams, access });
  const health = createUpstreamHealth({ upstreams, logger });
  const metrics = createGatewayMetrics();
  let draining = false;

  /** The gateway's own endpoints; true when it answered. */
  const serveOperational = (exchange: Exchange): boolean => {
    const method = exchange.req.method;
    if (method !== "GET" && method !== "HEAD") return false;
    switch (exchange.path) {
      case "/healthz":
        sendJson(exchange, 200, { status: "ok" });
        return true;
      case "/readyz":
        sendJson(exchange, draining ? 503 : 200, { status: draining ? "shutting_down" : "ready" });
        return true;
      case "/health":
        void health
          .check()
          .then((report) => sendJson(exchange, report.status === "SERVING" ? 200 : 503, report));
        return true;
      case "/metrics":
        metrics.registry.metrics().then(
          (text) => {
            exchange.res.writeHead(200, { "content-type": metrics.registry.contentType });
            exchange.res.end(text);
          },
          (error: unknown) => {
            logger.error({ err: error }, "collecting metrics failed");
            sendJson(exchange, 500, {
              error: { code: 500, status: "INTERNAL", message: "collecting metrics failed", details: [] },
            });
          },
        );
        return true;
      default:
        return false;
    }
  };

  const onRequest = (req: GatewayRequest, res: GatewayResponse): void => {
    const startedAt = performance.now();
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = q < 0 ? "" : rawUrl.slice(q + 1);
    const incomingId = requestHeader(req, "x-request-id");
    const requestId = incomingId !== undefined && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();

    const aborted = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborted.abort(new Error("the client went away"));
    });
    const exchange: Exchange = { req, res, path, query, requestId, signal: aborted.signal, logger };
    if (serveOperational(exchange)) return;

    const protocol = passthrough.protocolOf(req, path, query);
    const parent = extractTraceContext((key) => requestHeader(req, key));
    const span = tracer.startSpan(
      protocol ? path.slice(1) : `${req.method ?? "GET"}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": req.method ?? "GET",
          "url.path": path,
          "network.protocol.version": req.httpVersion,
          "zero.gateway.protocol": protocol ?? "rest",
        },
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span).setValue(requestIdContextKey, requestId);

    const handled = context.with(ctx, () =>
      protocol ? passthrough.handle(exchange, protocol) : rest(exchange),
    );
    handled
      .catch((error: unknown) => {
        // Handlers answer their own errors; reaching here is a bug. Answer 500 rather than hang.
        logger.error({ err: error, path }, "unhandled error in the gateway");
        if (!res.headersSent) {
          sendJson(exchange, 500, {
            error: { code: 500, status: "INTERNAL", message: "internal error", details: [] },
          });
        } else {
          res.destroy();
        }
        return "unmatched";
      })
      .then((label) => {
        const status = res.statusCode;
        if (!protocol && label !== "unmatched") span.updateName(label);
        span.setAttribute("http.route", label);
        span.setAttribute("http.response.status_code", status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        metrics.observe(
          { protocol: protocol ?? "rest", route: label, status },
          (performance.now() - startedAt) / 1000,
        );
      })
      .catch((error: unknown) => logger.error({ err: error }, "recording a request failed"));
  };

  // One port, two protocols, like every Zero service.
  const listener = await startListener({
    name: "gateway",
    ...(opts.host === undefined ? {} : { host: opts.host }),
    port: opts.port,
    logger,
    onRequest,
  });
  const url = listener.url;
  logger.info(
    {
      url,
      routes: routes.routes.length,
      upstreams: Object.fromEntries(upstreams.list.map((u) => [u.name, u.url])),
    },
    "gateway listening",
  );

  const shutdown = async (deadlineMs: number): Promise<void> => {
    logger.info({ deadline_ms: deadlineMs }, "gateway draining");
    draining = true;
    await listener.drain(deadlineMs);
    upstreams.close();
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

type JwksFetcher = Parameters<typeof createTokenVerifier>[0]["getJwks"];

/** The kit verifier fed by auth's GetJwks through the gateway's own connection to auth. */
function defaultVerifier(
  opts: GatewayOptions,
  auth: ReturnType<ReturnType<typeof createUpstreams>["byName"]>,
): TokenVerifier | undefined {
  if (!auth) return undefined;
  const client = createClient(AuthService, auth.transport);
  const getJwks: JwksFetcher = async () => {
    const response = await client.getJwks({}, { timeoutMs: 5_000 });
    return {
      keys: response.keys.map(
        (key) => toJson(JwkSchema, key) as Awaited<ReturnType<JwksFetcher>>["keys"][number],
      ),
    };
  };
  return createTokenVerifier({
    issuer: opts.tokenIssuer ?? "zero-auth",
    audience: opts.tokenAudience ?? "zero",
    getJwks,
  });
}
