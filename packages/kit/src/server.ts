import { setMaxListeners } from "node:events";
import http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "@zero/proto/grpc/health/v1/health_pb";
import { ServerReflection as ReflectionV1 } from "@zero/proto/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ReflectionV1alpha } from "@zero/proto/grpc/reflection/v1alpha/reflection_pb";
import { Access } from "@zero/proto/zero/options/v1/access_pb";
import { createAccessLogInterceptor } from "./access-log.js";
import { createAccessPolicyInterceptor } from "./access-policy.js";
import { createErrorInterceptor } from "./errors.js";
import { createHealthService } from "./health.js";
import type { Logger } from "./log.js";
import { createRpcMetrics } from "./metrics.js";
import { accessPolicyOf } from "./principal.js";
import type { TokenVerifier } from "./principal.js";
import { startListener, type AnyRequest, type AnyResponse } from "./listener.js";
import { createReadiness } from "./readiness.js";
import type { ReadinessCheck } from "./readiness.js";
import { createDeadlineInterceptor } from "./deadline.js";
import { keepByteOrderMarks } from "./text-encoding.js";
import { createReflection } from "./reflection.js";
import { rejectUndecodableMessages } from "./request-decoding.js";
import { tracingServerInterceptor } from "./tracing.js";

export interface ServerOptions {
  /** The service's name, for log lines. */
  name: string;
  /** Interface to bind; default all IPv4 interfaces. */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  logger: Logger;
  /** The services `routes` registers: reflection describes them, health answers for them. */
  services: DescService[];
  routes: (router: ConnectRouter) => void;
  /** Needed as soon as one method is USER, ADMIN or INTERNAL. */
  verifier?: TokenVerifier;
  /** The dependencies that must be up for `/readyz` and health to say SERVING. */
  readiness?: ReadinessCheck[];
  /** Run after the kit's own interceptors (so they see the principal). */
  interceptors?: Interceptor[];
  /** Largest request message accepted; larger ones get `resource_exhausted`. Default 1 MiB. */
  maxBodyBytes?: number;
  /** How often readiness checks are polled for health watchers; default 2 s. */
  readinessIntervalMs?: number;
}

export interface Server {
  port: number;
  /** `http://host:port`, with a loopback host when bound to all interfaces. */
  url: string;
  /**
   * Drains and stops: health turns NOT_SERVING, no new connections are accepted, HTTP/2 clients get
   * GOAWAY, in-flight calls may finish; whatever is still open after `deadlineMs` (default 10 s)
   * is cancelled and its connection destroyed.
   */
  close(deadlineMs?: number): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

const KIT_SERVICES: DescService[] = [Health, ReflectionV1, ReflectionV1alpha];

/**
 * One port for everything: Connect, gRPC and gRPC-Web over HTTP/1.1 and cleartext HTTP/2 (prior
 * knowledge), plus `GET /healthz` (alive), `GET /readyz` (dependencies up) and `GET /metrics`.
 */
export async function startServer(opts: ServerOptions): Promise<Server> {
  const { logger } = opts;
  keepByteOrderMarks();
  assertVerifierWhenNeeded(opts);

  const draining = new AbortController();
  // Aborted only when the drain deadline passes: handlers still running then see their signal abort.
  const deadlinePassed = new AbortController();
  // connect-node adds one listener per call in flight: hundreds are normal, not a leak.
  setMaxListeners(0, deadlinePassed.signal);
  const allServices = [...opts.services, ...KIT_SERVICES];
  const readiness = createReadiness({
    checks: opts.readiness ?? [],
    logger,
    ...(opts.readinessIntervalMs === undefined ? {} : { intervalMs: opts.readinessIntervalMs }),
  });
  const metrics = createRpcMetrics();
  const reflection = createReflection(allServices);
  const health = createHealthService({
    readiness,
    serviceNames: reflection.serviceNames,
    draining: draining.signal,
  });

  const rpcHandler = connectNodeAdapter({
    routes(router) {
      opts.routes(router);
      router.service(Health, health);
      router.service(ReflectionV1, reflection.v1);
      router.service(ReflectionV1alpha, reflection.v1alpha);
      // An undecodable binary message is INVALID_ARGUMENT, not connect-es's INTERNAL.
      rejectUndecodableMessages(router.handlers, opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    },
    // Order matters: the span covers everything; metrics and the access log see the final code;
    // errors are mapped before they leave; a call past its deadline is not run (or not answered
    // as if in time); access is decided before any handler runs.
    interceptors: [
      tracingServerInterceptor,
      metrics.interceptor,
      createAccessLogInterceptor(logger),
      createErrorInterceptor(logger),
      createDeadlineInterceptor(),
      createAccessPolicyInterceptor({
        ...(opts.verifier === undefined ? {} : { verifier: opts.verifier }),
        publicServices: new Set(KIT_SERVICES.map((s) => s.typeName)),
      }),
      ...(opts.interceptors ?? []),
    ],
    readMaxBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    // An unknown JSON field is a client bug (or a mass-assignment attempt such as `roles`): refuse
    // it with invalid_argument, as the gateway does for REST, instead of silently dropping it.
    jsonOptions: { ignoreUnknownFields: false },
    shutdownSignal: deadlinePassed.signal,
  });

  const reply = (res: AnyResponse, status: number, contentType: string, body: string): void => {
    res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
    res.end(body);
  };

  const onRequest = (req: AnyRequest, res: AnyResponse): void => {
    if (req instanceof http2.Http2ServerRequest) releaseUnreadRequest(req);
    if (req.method === "GET" || req.method === "HEAD") {
      const path = req.url?.split("?", 1)[0];
      if (path === "/healthz") {
        reply(res, 200, "application/json", '{"status":"ok"}');
        return;
      }
      if (path === "/readyz") {
        readiness.refresh(250).then(
          (state) =>
            state.ready
              ? reply(res, 200, "application/json", '{"status":"ready"}')
              : reply(
                  res,
                  503,
                  "application/json",
                  JSON.stringify({ status: "not_ready", failing: state.failing }),
                ),
          (error: unknown) => {
            logger.error({ err: error }, "readiness refresh failed");
            reply(res, 503, "application/json", '{"status":"not_ready"}');
          },
        );
        return;
      }
      if (path === "/metrics") {
        metrics.registry.metrics().then(
          (text) => reply(res, 200, metrics.registry.contentType, text),
          (error: unknown) => {
            logger.error({ err: error }, "collecting metrics failed");
            reply(res, 500, "text/plain", "collecting metrics failed\n");
          },
        );
        return;
      }
    }
    rpcHandler(req, res);
  };

  const listener = await startListener({
    name: opts.name,
    ...(opts.host === undefined ? {} : { host: opts.host }),
    port: opts.port,
    logger,
    onRequest,
  });
  logger.info(
    { server: opts.name, url: listener.url, services: reflection.serviceNames },
    "server listening",
  );

  const shutdown = async (deadlineMs: number): Promise<void> => {
    logger.info({ server: opts.name, deadline_ms: deadlineMs }, "server draining");
    readiness.beginShutdown();
    draining.abort();
    // Handlers still running at the deadline see their signal abort before their connection goes.
    await listener.drain(deadlineMs, () => deadlinePassed.abort());
    readiness.stop();
    logger.info({ server: opts.name }, "server stopped");
  };

  let closing: Promise<void> | undefined;
  return {
    port: listener.port,
    url: listener.url,
    close(deadlineMs = 10_000) {
      closing ??= shutdown(deadlineMs);
      return closing;
    },
  };
}

const RESET_POLL_MS = 10;
const RESET_GIVE_UP_MS = 5000;

/**
 * An answer can end before the request did (e.g. `resource_exhausted` for an oversized message).
 * The unread rest of the body then fills the stream's flow-control window and the HTTP/2 stream
 * stays open forever, holding a concurrency slot and blocking graceful shutdown. RFC 9113 §8.1:
 * once the response is complete, the server may reset the stream with NO_ERROR. It must be
 * complete on the wire, not just queued (a reset drops queued DATA), hence the short wait for the
 * local END_STREAM to go out.
 */
function releaseUnreadRequest(req: http2.Http2ServerRequest): void {
  const stream = req.stream;
  // The compatibility response emits "finish" only once the stream closed: watch the stream.
  stream.once("finish", () => {
    if ((req.complete || stream.state.remoteClose === 1) && !req.destroyed) return;
    // The compatibility request stopped reading; its data listener would pause the stream again
    // on every chunk, and a stream with unread data never closes. Drop the rest instead.
    stream.removeAllListeners("data");
    stream.resume();
    const startedAt = Date.now();
    const resetWhenSent = (): void => {
      if (stream.closed || stream.destroyed) return;
      if (stream.state.localClose === 1 || Date.now() - startedAt > RESET_GIVE_UP_MS) {
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return;
      }
      setTimeout(resetWhenSent, RESET_POLL_MS).unref();
    };
    resetWhenSent();
  });
}

// Fail at start-up rather than answer every call `unauthenticated`.
function assertVerifierWhenNeeded(opts: ServerOptions): void {
  if (opts.verifier !== undefined) return;
  const needing = opts.services.flatMap((service) =>
    service.methods
      .filter((method) => [Access.USER, Access.ADMIN, Access.INTERNAL].includes(accessPolicyOf(method)))
      .map((method) => `${service.typeName}/${method.name}`),
  );
  if (needing.length > 0) {
    throw new Error(
      `startServer: ${needing.join(", ")} need a token verifier; pass \`verifier: createTokenVerifier(...)\``,
    );
  }
}
