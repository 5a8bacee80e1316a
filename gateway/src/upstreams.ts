import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { upstreamNameOf } from "./config.js";

/** A service process the gateway forwards to: one long-lived HTTP/2 connection, shared by all calls. */
export interface Upstream {
  /** `auth` for `zero.auth.v1`. */
  readonly name: string;
  readonly url: string;
  readonly services: readonly DescService[];
  /**
   * The HTTP/2 connection. Pass-through streams and the REST transport share it, so a busy
   * gateway holds exactly one session per upstream and never pays a handshake per request.
   */
  readonly sessions: Http2SessionManager;
  /** Connect + binary over that connection, for calls the gateway makes itself (REST, health, JWKS). */
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

export interface UpstreamsOptions {
  readonly services: readonly DescService[];
  /** Upstream name → base URL (`http://host:port`), from config. */
  readonly urls: Readonly<Record<string, string>>;
  /** Applied to the gateway's own calls (REST, health, JWKS): the kit's client tracing, … */
  readonly interceptors?: Interceptor[];
}

export function createUpstreams(opts: UpstreamsOptions): Upstreams {
  const byName = new Map<string, Upstream>();
  const byService = new Map<string, { upstream: Upstream; service: DescService }>();
  const unrouted: DescService[] = [];

  for (const service of opts.services) {
    const name = upstreamNameOf(service);
    const url = opts.urls[name];
    if (url === undefined) {
      unrouted.push(service);
      continue;
    }
    let upstream = byName.get(name);
    if (!upstream) {
      const sessions = new Http2SessionManager(
        url,
        // Keepalive notices an upstream that vanished without closing its socket; pings are only
        // sent while streams are open or before reusing a long-idle connection.
        { pingIntervalMs: 30_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 15 * 60_000 },
      );
      const transport = createConnectTransport({
        baseUrl: url,
        httpVersion: "2",
        useBinaryFormat: true,
        sessionManager: sessions,
        interceptors: [retryRefusedStream, ...(opts.interceptors ?? [])],
      });
      upstream = { name, url, services: [], sessions, transport };
      byName.set(name, upstream);
    }
    (upstream.services as DescService[]).push(service);
    byService.set(service.typeName, { upstream, service });
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
      for (const upstream of byName.values()) upstream.sessions.abort();
    },
  };
}

/**
 * A stream the upstream refused (RST_STREAM REFUSED_STREAM, e.g. it arrived just after the
 * upstream's GOAWAY when it began to drain) was guaranteed not to be processed (RFC 9113 §8.7),
 * so even a non-idempotent unary call is safe to send once more — on a fresh connection, possibly
 * to another replica. connect-node reports it as INTERNAL; a second refusal becomes UNAVAILABLE.
 */
const retryRefusedStream: Interceptor = (next) => async (req) => {
  if (req.stream) return next(req);
  try {
    return await next(req);
  } catch (error) {
    if (!isRefusedStream(error)) throw error;
  }
  try {
    return await next(req);
  } catch (error) {
    if (!isRefusedStream(error)) throw error;
    throw new ConnectError(
      "the upstream service is shutting down: retry shortly",
      Code.Unavailable,
      undefined,
      undefined,
      error,
    );
  }
};

function isRefusedStream(error: unknown): boolean {
  return error instanceof ConnectError && error.rawMessage.includes("NGHTTP2_REFUSED_STREAM");
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
