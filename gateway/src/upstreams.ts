import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { upstreamNameOf } from "./config.js";
import { createBalancedSessions, type UpstreamSessions } from "./edge/balanced-sessions.js";
import { createBalancedTransport, type UpstreamObserver } from "./edge/balanced-transport.js";
import { createCircuitBreaker, type CircuitState } from "./edge/circuit-breaker.js";
import { createHttp1Lane } from "./edge/connect-unary-http1.js";
import type { EdgeCallLookup } from "./edge/edge-call.js";
import { createRetryBudget } from "./edge/retry-budget.js";
import { createUpstreamPool, type UpstreamInstance } from "./edge/upstream-pool.js";

export type { UpstreamInstance } from "./edge/upstream-pool.js";

/**
 * A service the gateway forwards to, as one or more processes (instances). Each instance has one
 * long-lived HTTP/2 connection shared by all calls; the two faces below spread calls over the
 * instances, skip unhealthy ones and stop sending to a failing one (circuit breaker).
 */
export interface Upstream {
  /** `auth` for `zero.auth.v1`. */
  readonly name: string;
  /** The configured instance URLs, comma-separated (for logs). */
  readonly url: string;
  readonly services: readonly DescService[];
  readonly instances: readonly UpstreamInstance[];
  /** For pass-through: opens an HTTP/2 stream on a chosen instance. */
  readonly sessions: UpstreamSessions;
  /** Connect + binary, for calls the gateway makes itself (REST, JWKS): balanced, deadlines, retries. */
  readonly transport: Transport;
}

export interface UpstreamMethod {
  readonly upstream: Upstream;
  readonly service: DescService;
  readonly method: DescMethod;
}

export interface Upstreams {
  readonly list: readonly Upstream[];
  /** Services known to the gateway but not routed, because their `<NAME>_URL` is not configured. */
  readonly unrouted: readonly DescService[];
  byName(name: string): Upstream | undefined;
  /** `/<package.Service>/<Method>` → where it goes; undefined for anything the gateway does not route. */
  resolve(serviceName: string, methodName: string): UpstreamMethod | undefined;
  /** Closes every connection (in-flight streams are cancelled). */
  close(): void;
}

export interface ResilienceOptions {
  /** Consecutive failures that open an instance's circuit; default 5. */
  readonly breakerFailureThreshold?: number;
  /** How long a circuit stays open before a probe; default 5 s. */
  readonly breakerOpenMs?: number;
  /** Retries allowed as a share of requests (default 0.2) plus a floor per second (default 10). */
  readonly retryRatio?: number;
  readonly retryMinPerSecond?: number;
  /**
   * HTTP/1.1 keep-alive connections per instance for unary calls while few are in flight; the
   * rest share the instance's HTTP/2 session (connect-unary-http1.ts says why). Default 4; 0 =
   * HTTP/2 only.
   */
  readonly http1Connections?: number;
  /**
   * How long an instance's HTTP/2 session must have carried no unary call before calls go back to
   * the lane; default 20 ms (balanced-transport.ts says why).
   */
  readonly http1QuietMs?: number;
}

export interface UpstreamsOptions extends ResilienceOptions {
  readonly services: readonly DescService[];
  /** Upstream name → base URL(s): `http://host:port`, a comma-separated list, or an array. */
  readonly urls: Readonly<Record<string, string | readonly string[]>>;
  /** The configured deadline of an RPC (`package.Service/Method`) when the client gave none. */
  readonly timeoutFor: (rpc: string) => number | undefined;
  /** The deadline of calls without a client deadline or a route rule. */
  readonly defaultTimeoutMs: number;
  /** Per-request edge facts (client deadline, client address) filed under the request's signal. */
  readonly edgeCallOf?: EdgeCallLookup;
  /** The largest unary request message sent, encoded (balanced-transport.ts); default 1 MiB. */
  readonly maxRequestBytes?: number;
  readonly observer?: UpstreamObserver & {
    circuit(upstream: string, instance: string, state: CircuitState): void;
  };
}

export function createUpstreams(opts: UpstreamsOptions): Upstreams {
  const byName = new Map<string, Upstream>();
  const byService = new Map<string, { upstream: Upstream; service: DescService }>();
  const unrouted: DescService[] = [];
  const grouped = new Map<string, DescService[]>();

  for (const service of opts.services) {
    const name = upstreamNameOf(service);
    if (opts.urls[name] === undefined) {
      unrouted.push(service);
      continue;
    }
    grouped.set(name, [...(grouped.get(name) ?? []), service]);
  }

  for (const [name, services] of grouped) {
    const urls = instanceUrls(opts.urls[name] as string | readonly string[]);
    const instances = urls.map((url) => createInstance(name, url, opts));
    const pool = createUpstreamPool(instances);
    const methods = new Map<string, DescMethod>();
    for (const service of services) {
      for (const method of service.methods) methods.set(`${service.typeName}/${method.name}`, method);
    }
    const upstream: Upstream = {
      name,
      url: urls.join(","),
      services,
      instances,
      sessions: createBalancedSessions({
        name,
        pool,
        timeoutFor: opts.timeoutFor,
        defaultTimeoutMs: opts.defaultTimeoutMs,
        methodOf: (rpc) => methods.get(rpc),
        ...(opts.observer ? { observer: opts.observer } : {}),
      }),
      transport: createBalancedTransport({
        name,
        pool,
        budget: createRetryBudget({
          ...(opts.retryRatio === undefined ? {} : { ratio: opts.retryRatio }),
          ...(opts.retryMinPerSecond === undefined ? {} : { minPerSecond: opts.retryMinPerSecond }),
        }),
        timeoutFor: opts.timeoutFor,
        defaultTimeoutMs: opts.defaultTimeoutMs,
        edgeCallOf: opts.edgeCallOf ?? (() => undefined),
        ...(opts.observer ? { observer: opts.observer } : {}),
        ...(opts.http1QuietMs === undefined ? {} : { laneQuietMs: opts.http1QuietMs }),
        ...(opts.maxRequestBytes === undefined ? {} : { maxRequestBytes: opts.maxRequestBytes }),
      }),
    };
    byName.set(name, upstream);
    for (const service of services) byService.set(service.typeName, { upstream, service });
  }

  return {
    list: [...byName.values()],
    unrouted,
    byName: (name) => byName.get(name),
    resolve(serviceName, methodName) {
      const entry = byService.get(serviceName);
      const method = entry?.service.methods.find((m) => m.name === methodName);
      return entry && method ? { upstream: entry.upstream, service: entry.service, method } : undefined;
    },
    close() {
      for (const upstream of byName.values()) {
        for (const instance of upstream.instances) {
          instance.sessions.abort();
          instance.http1?.close();
        }
      }
    },
  };
}

function instanceUrls(value: string | readonly string[]): string[] {
  const list = typeof value === "string" ? value.split(",") : [...value];
  const urls = list.map((url) => url.trim()).filter((url) => url !== "");
  if (urls.length === 0) throw new Error("an upstream needs at least one URL");
  return urls;
}

function createInstance(name: string, url: string, opts: UpstreamsOptions): UpstreamInstance {
  const sessions = new Http2SessionManager(
    url,
    // Keepalive notices an instance that vanished without closing its socket; pings are only
    // sent while streams are open or before reusing a long-idle connection.
    { pingIntervalMs: 30_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 15 * 60_000 },
  );
  const http1 = createHttp1Lane(url, { maxInFlight: opts.http1Connections ?? 4 });
  // Every circuit starts closed: said at once, so the gauge has a sample before its first change.
  opts.observer?.circuit(name, url, "closed");
  return {
    url,
    sessions,
    ...(http1 === undefined ? {} : { http1 }),
    transport: createConnectTransport({
      baseUrl: url,
      httpVersion: "2",
      useBinaryFormat: true,
      sessionManager: sessions,
    }),
    breaker: createCircuitBreaker({
      ...(opts.breakerFailureThreshold === undefined
        ? {}
        : { failureThreshold: opts.breakerFailureThreshold }),
      ...(opts.breakerOpenMs === undefined ? {} : { openMs: opts.breakerOpenMs }),
      onStateChange: (state) => opts.observer?.circuit(name, url, state),
    }),
    serving: true,
  };
}

/**
 * An upstream that cannot be reached surfaces from connect-node as UNAVAILABLE with a socket
 * error message ("connect ECONNREFUSED 127.0.0.1:9001"). Callers get a message that names the
 * service instead of our network layout; the original goes to the log.
 */
export function upstreamFailure(upstream: Upstream, error: unknown): ConnectError | undefined {
  const connectError = ConnectError.from(error);
  if (connectError.code !== Code.Unavailable) return undefined;
  if (connectError.details.length > 0 || !isNetworkError(connectError)) return undefined;
  return new ConnectError(`the ${upstream.name} service is unavailable: retry shortly`, Code.Unavailable);
}

function isNetworkError(error: ConnectError): boolean {
  let cause: unknown = error.cause;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    if (typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string") {
      if (/^(E[A-Z]+|ERR_HTTP2_\w+)$/.test(cause.code)) return true;
    }
    cause = typeof cause === "object" && cause !== null && "cause" in cause ? cause.cause : undefined;
  }
  return /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|ENOTFOUND|socket hang up|GOAWAY|session/i.test(
    error.rawMessage,
  );
}
