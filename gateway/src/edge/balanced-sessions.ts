import http2 from "node:http2";
import type { ClientHttp2Stream, ClientSessionRequestOptions, OutgoingHttpHeaders } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UpstreamObserver } from "./balanced-transport.js";
import { MAX_DEADLINE_MS, formatGrpcTimeout, parseConnectTimeout, parseGrpcTimeout } from "./deadline.js";
import type { UpstreamInstance, UpstreamPool } from "./upstream-pool.js";

/**
 * The face of an upstream that pass-through (Connect, gRPC, gRPC-Web forwarded byte for byte)
 * talks to: it opens a stream on one of the service's instances. Shaped like connect-node's
 * Http2SessionManager, whose two methods pass-through uses.
 */
export interface UpstreamSessions {
  request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    options: Omit<ClientSessionRequestOptions, "endStream">,
  ): Promise<ClientHttp2Stream>;
  notifyResponseByteRead(stream: ClientHttp2Stream): void;
}

export interface BalancedSessionsOptions {
  readonly name: string;
  readonly pool: UpstreamPool;
  /** The configured deadline of an RPC (`package.Service/Method`) when the client gave none. */
  readonly timeoutFor: (rpc: string) => number | undefined;
  /** For unary calls without a client deadline or a route rule. */
  readonly defaultTimeoutMs: number;
  /** The routed method behind `/<package.Service>/<Method>`. */
  readonly methodOf: (rpc: string) => DescMethod | undefined;
  readonly observer?: UpstreamObserver;
}

// An upstream that ignores the deadline it was sent (hung event loop) is cut this long after it.
const DEADLINE_GRACE_MS = 1_000;
const { NGHTTP2_CANCEL } = http2.constants;

/**
 * Round robin over healthy instances with closed circuits. A stream that cannot be opened (no
 * connection) has sent nothing, so the next instance is tried whatever the method; once a
 * stream is open the request body is being piped and cannot be replayed, so there is no retry
 * after that. Unary calls without a client deadline get the route's default one; streaming calls
 * keep whatever the client chose (a subscription may rightly last long).
 */
export function createBalancedSessions(opts: BalancedSessionsOptions): UpstreamSessions {
  const owner = new WeakMap<ClientHttp2Stream, UpstreamInstance>();

  /**
   * The call's headers with a deadline for the upstream, and how long the gateway waits for it.
   * `blame`: whether silence past it counts against the instance — not when the client chose a
   * deadline shorter than the operator's (a client could otherwise open a breaker for everyone).
   */
  const withDeadline = (
    path: string,
    headers: OutgoingHttpHeaders,
  ): { headers: OutgoingHttpHeaders; ms?: number; blame: boolean } => {
    const rpc = path.slice(1).split("?", 1)[0] as string;
    const grpcTimeout = parseGrpcTimeout(single(headers["grpc-timeout"]));
    const connectTimeout = parseConnectTimeout(single(headers["connect-timeout-ms"]));
    const clientMs = connectTimeout ?? grpcTimeout;
    const unary = opts.methodOf(rpc)?.methodKind === "unary";
    const ms = opts.timeoutFor(rpc) ?? opts.defaultTimeoutMs;
    if (clientMs !== undefined) return { headers, ms: clientMs, blame: !unary || clientMs >= ms };
    if (!unary) return { headers, blame: true };
    const contentType = single(headers["content-type"]) ?? "";
    const withTimeout = contentType.startsWith("application/grpc")
      ? { ...headers, "grpc-timeout": formatGrpcTimeout(ms) }
      : { ...headers, "connect-timeout-ms": String(ms) };
    return { headers: withTimeout, ms, blame: true };
  };

  return {
    async request(method, path, headers, options) {
      const call = withDeadline(path, headers);
      const tried = new Set<UpstreamInstance>();
      let lastError: unknown;
      for (;;) {
        const instance = opts.pool.pick(tried);
        if (instance === undefined) {
          if (tried.size === 0) opts.observer?.rejected(opts.name);
          throw new ConnectError(
            `the ${opts.name} service is unavailable: retry shortly`,
            Code.Unavailable,
            undefined,
            undefined,
            lastError,
          );
        }
        tried.add(instance);
        const startedAt = performance.now();
        let stream: ClientHttp2Stream;
        try {
          stream = await instance.sessions.request(method, path, call.headers, options);
        } catch (error) {
          lastError = error;
          instance.breaker.onFailure();
          opts.observer?.attempt(opts.name, instance.url, "failure", (performance.now() - startedAt) / 1000);
          if (tried.size < opts.pool.instances.length) opts.observer?.retry(opts.name, "unsent");
          continue;
        }
        owner.set(stream, instance);
        watch(stream, instance, startedAt, call.ms, call.blame);
        return stream;
      }
    },
    notifyResponseByteRead(stream) {
      owner.get(stream)?.sessions.notifyResponseByteRead(stream);
    },
  };

  function watch(
    stream: ClientHttp2Stream,
    instance: UpstreamInstance,
    startedAt: number,
    ms: number | undefined,
    blame: boolean,
  ): void {
    let answered = false;
    let hung = false;
    const timer =
      ms === undefined
        ? undefined
        : setTimeout(
            () => {
              if (stream.closed) return;
              // Silent past the deadline with the whole request in hand: the instance's fault. With
              // the request still arriving (a slow client), or a deadline the client cut short, not.
              hung = !answered && blame && stream.writableFinished;
              stream.close(NGHTTP2_CANCEL);
            },
            Math.min(MAX_DEADLINE_MS, ms + DEADLINE_GRACE_MS),
          );
    timer?.unref();
    stream.once("response", () => {
      answered = true;
      instance.breaker.onSuccess();
    });
    stream.once("close", () => {
      clearTimeout(timer);
      const seconds = (performance.now() - startedAt) / 1000;
      // Cancelled because the client left says nothing about the instance; silence past the
      // deadline does.
      if (hung || (!answered && stream.rstCode !== NGHTTP2_CANCEL)) instance.breaker.onFailure();
      opts.observer?.attempt(opts.name, instance.url, answered ? "ok" : "failure", seconds);
    });
  }
}

function single(value: OutgoingHttpHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : String(value);
}
