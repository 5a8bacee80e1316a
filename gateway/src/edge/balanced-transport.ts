import type { OutgoingHttpHeaders } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type {
  DescMessage,
  DescMethod,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ContextValues, StreamResponse, Transport, UnaryResponse } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import { DomainError, domainErrorToConnectError } from "@zero/kit/errors";
import { injectTraceHeaders } from "@zero/kit/tracing";

type HeadersInit = ConstructorParameters<typeof Headers>[0];
import { sendConnectUnary } from "./connect-unary-call.js";
import { UnaryCallFailure, type UnaryExchange, type UnaryResult } from "./unary-exchange.js";
import type { EdgeCall, EdgeCallLookup } from "./edge-call.js";
import type { RetryBudget } from "./retry-budget.js";
import type { UpstreamInstance, UpstreamPool } from "./upstream-pool.js";

/** What the metrics see of upstream calls. */
export interface UpstreamObserver {
  /** One attempt on one instance; `outcome` says whether it counted against the instance. */
  attempt(upstream: string, instance: string, outcome: "ok" | "failure" | "answered", seconds: number): void;
  /** A call sent again: `unsent` (never reached the first instance) or `transient` (safe method). */
  retry(upstream: string, reason: "unsent" | "transient"): void;
  /** No instance could take the call (all circuits open): answered 503 without trying. */
  rejected(upstream: string): void;
}

export interface BalancedTransportOptions {
  /** `auth`, for messages and metrics. */
  readonly name: string;
  readonly pool: UpstreamPool;
  readonly budget: RetryBudget;
  /** The configured deadline of an RPC (`package.Service/Method`) when the client gave none. */
  readonly timeoutFor: (rpc: string) => number | undefined;
  /** When neither the client, a route rule nor the caller of the transport set one. */
  readonly defaultTimeoutMs: number;
  readonly edgeCallOf: EdgeCallLookup;
  readonly observer?: UpstreamObserver;
  /** Attempts per call at most, the first included; default 3. */
  readonly maxAttempts?: number;
  /** Default 16 MiB. */
  readonly maxResponseBytes?: number;
  /**
   * The largest unary request message sent, encoded; default 1 MiB, what the kit's services read
   * at most. A REST body under the gateway's own limit can grow past it once encoded (each empty
   * JSON array inside a `google.protobuf.Value` takes 4 bytes of protobuf for its 3 of JSON): such a
   * call is refused here with 413, rather than sent for the service to answer resource_exhausted,
   * which REST would turn into a 429 telling the client to retry.
   */
  readonly maxRequestBytes?: number;
  /** How long an instance's HTTP/2 session must be quiet before unary calls take its lane again; default LANE_QUIET_MS. */
  readonly laneQuietMs?: number;
}

/**
 * The Transport every gateway-made call goes through (REST, JWKS, …): picks an instance round
 * robin (health- and circuit-aware), sends the caller's deadline (or the route's default) along,
 * and retries — on another instance when there is one — only when it cannot do harm:
 * - a call that never reached the upstream (connection refused, stream refused): always;
 * - a call that failed in transit or answered UNAVAILABLE: only for safe calls (RPC marked
 *   `idempotency_level = NO_SIDE_EFFECTS`, or a REST GET/HEAD), within the retry budget and the
 *   deadline.
 * Transport failures count against the instance's circuit breaker; while every circuit is open,
 * calls fail with UNAVAILABLE at once.
 */
export function createBalancedTransport(opts: BalancedTransportOptions): Transport {
  const maxAttempts = opts.maxAttempts ?? 3;
  const maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024 * 1024;
  const maxRequestBytes = opts.maxRequestBytes ?? 1024 * 1024;
  const laneQuietMs = opts.laneQuietMs ?? LANE_QUIET_MS;
  const unavailable = (): ConnectError =>
    new ConnectError(`the ${opts.name} service is unavailable: retry shortly`, Code.Unavailable);

  // The client's own deadline, else the operator's rule for the RPC, else what the caller of the
  // transport asked for (the REST handler's default), else the gateway-wide default.
  const configuredDeadlineOf = (rpc: string, timeoutMs: number | undefined): number =>
    opts.timeoutFor(rpc) ?? (timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs : opts.defaultTimeoutMs);
  const deadlineOf = (rpc: string, edge: EdgeCall | undefined, timeoutMs: number | undefined): number =>
    edge?.clientTimeoutMs ?? configuredDeadlineOf(rpc, timeoutMs);

  // The caller's Headers is built for this one call: use it rather than copy it (undici's Headers
  // validates every value it takes, a measurable cost per request).
  const headersOf = (header: HeadersInit | undefined): Headers =>
    header instanceof Headers ? header : new Headers(header);

  /** Set on the wire rather than by the caller: the edge alone knows the client behind trusted proxies. */
  const addForwarded = (headers: OutgoingHttpHeaders, edge: EdgeCall | undefined): void => {
    if (edge === undefined) return;
    headers["x-forwarded-for"] = edge.clientIp;
    headers["x-forwarded-proto"] = edge.proto;
    if (edge.host !== undefined) headers["x-forwarded-host"] = edge.host;
  };

  const isSafe = (method: DescMethod, edge: EdgeCall | undefined): boolean =>
    method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || edge?.safeHttpMethod === true;

  // Unary calls on each instance's HTTP/2 session: how many are in flight, and when one last
  // started or ended (see send below).
  const http2Unary = new WeakMap<UpstreamInstance, { inFlight: number; lastActiveAt: number }>();
  const http2UnaryOf = (instance: UpstreamInstance): { inFlight: number; lastActiveAt: number } => {
    let state = http2Unary.get(instance);
    if (state === undefined) {
      state = { inFlight: 0, lastActiveAt: -Infinity };
      http2Unary.set(instance, state);
    }
    return state;
  };

  /**
   * One attempt on one instance: over HTTP/1.1 only while the instance's HTTP/2 session has carried
   * no unary call for laneQuietMs (LANE_QUIET_MS). Once calls overflow onto it (load), new ones join
   * it until it has been quiet that long — at saturation the lane's one-request-per-wake-up costs
   * the service more than it saves here, and a session that empties for an instant between two
   * bursts is not quiet (connect-unary-http1.ts, bench/gateway/RESULTS.md).
   */
  const sendUnary = (instance: UpstreamInstance, exchange: UnaryExchange): Promise<UnaryResult> => {
    const h2 = http2UnaryOf(instance);
    const now = performance.now();
    const viaLane =
      h2.inFlight === 0 && now - h2.lastActiveAt >= laneQuietMs
        ? instance.http1?.trySend(exchange)
        : undefined;
    if (viaLane !== undefined) return viaLane;
    h2.inFlight++;
    h2.lastActiveAt = now;
    const settled = (): void => {
      h2.inFlight--;
      h2.lastActiveAt = performance.now();
    };
    // Not `.finally`: it makes two more promises per call.
    return sendConnectUnary(instance.sessions, exchange).then(
      (result) => {
        settled();
        return result;
      },
      (error: unknown) => {
        settled();
        throw error;
      },
    );
  };

  /** Runs `attempt` on instances until one answers or retrying would be wrong. */
  const withRetries = async <T>(
    safe: boolean,
    deadline: number,
    attempt: (instance: UpstreamInstance, remainingMs: number) => Promise<T>,
    classify: (error: unknown) => { sent: boolean; transport: boolean; error: ConnectError },
  ): Promise<T> => {
    opts.budget.onRequest();
    // Made on the first retry only: most calls are answered by the first instance picked.
    let tried: Set<UpstreamInstance> | undefined;
    let previous: UpstreamInstance | undefined;
    for (let attempts = 1; ; attempts++) {
      if (previous !== undefined) (tried ??= new Set()).add(previous);
      let instance = opts.pool.pick(tried);
      // A single instance (or all tried) may still get a retry on a fresh stream.
      if (instance === undefined && tried !== undefined) instance = opts.pool.pick();
      if (instance === undefined) {
        opts.observer?.rejected(opts.name);
        throw unavailable();
      }
      previous = instance;
      const startedAt = performance.now();
      try {
        const result = await attempt(instance, deadline - Date.now());
        instance.breaker.onSuccess();
        opts.observer?.attempt(opts.name, instance.url, "ok", (performance.now() - startedAt) / 1000);
        return result;
      } catch (raw) {
        const failure = classify(raw);
        const { code } = failure.error;
        // The instance's fault: it could not be reached, dropped the call, or says it is unavailable.
        const instanceFault = failure.transport || code === Code.Unavailable;
        // A cancelled call says nothing about the instance either way.
        if (code !== Code.Canceled) {
          if (instanceFault) instance.breaker.onFailure();
          else instance.breaker.onSuccess();
        }
        opts.observer?.attempt(
          opts.name,
          instance.url,
          instanceFault ? "failure" : "answered",
          (performance.now() - startedAt) / 1000,
        );
        const retryable =
          attempts < maxAttempts &&
          deadline - Date.now() > 1 &&
          code !== Code.Canceled &&
          code !== Code.DeadlineExceeded &&
          (!failure.sent || (safe && instanceFault && opts.budget.tryRetry()));
        if (!retryable) {
          // Callers get a message naming the service, not our network layout (the cause is kept).
          if (failure.transport && code === Code.Unavailable) {
            throw new ConnectError(
              unavailable().rawMessage,
              Code.Unavailable,
              undefined,
              undefined,
              failure.error,
            );
          }
          throw failure.error;
        }
        const reason = failure.sent ? "transient" : "unsent";
        opts.observer?.retry(opts.name, reason);
        // Attempts are not spans of their own: the request's span notes each retry.
        trace
          .getActiveSpan()
          ?.addEvent("upstream retry", { "zero.upstream": opts.name, "zero.retry.reason": reason });
      }
    }
  };

  return {
    // Not an async function, nor is send: every REST request comes through here, and each async
    // function and await is one promise and one microtask turn more per call.
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      try {
        const edge = opts.edgeCallOf(signal);
        const path = `/${method.parent.typeName}/${method.name}`;
        const configuredMs = configuredDeadlineOf(path.slice(1), timeoutMs);
        const allowedMs = edge?.clientTimeoutMs ?? configuredMs;
        const deadline = Date.now() + allowedMs;
        // Out of time within a deadline the client cut short is the client's choice, not the
        // instance's failure (unary-exchange.ts `timeoutBlamesUpstream`).
        const timeoutBlamesUpstream = allowedMs >= configuredMs;
        // The REST handler's plain record goes to the wire as it is: no Headers object, which would
        // cost undici's per-value validation twice per call.
        const outgoing: OutgoingHttpHeaders = {};
        if (isPlainRecord(header)) Object.assign(outgoing, header);
        else
          headersOf(header).forEach((value, key) => {
            outgoing[key] = value;
          });
        addForwarded(outgoing, edge);
        // The call continues the gateway's span for this request (traceparent), as the pass-through
        // does: one gateway span per request, whatever the protocol.
        injectTraceHeaders((key, value) => (outgoing[key] = value));
        const body = toBinary(method.input, create(method.input, input));
        if (body.byteLength > maxRequestBytes) {
          const tooLarge = new DomainError(
            "invalid_argument",
            `the request is ${body.byteLength} bytes once encoded for the ${opts.name} service, more than the ${maxRequestBytes} it accepts: send less`,
            { reason: "BODY_TOO_LARGE", metadata: { http_status: "413" } },
          );
          return Promise.reject(domainErrorToConnectError(tooLarge));
        }
        const callSignal = signal ?? new AbortController().signal;
        return withRetries(
          isSafe(method, edge),
          deadline,
          (instance, remainingMs) =>
            sendUnary(instance, {
              path,
              headers: outgoing,
              body,
              timeoutMs: remainingMs,
              signal: callSignal,
              maxResponseBytes,
              timeoutBlamesUpstream,
            }),
          (error) =>
            error instanceof UnaryCallFailure
              ? error
              : { sent: true, transport: false, error: ConnectError.from(error) },
        ).then((result) => unaryResponseOf(opts.name, method, result));
      } catch (error) {
        // A rejection, as from an async function (connect's own transports reject with ConnectErrors).
        return Promise.reject(ConnectError.from(error));
      }
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const edge = opts.edgeCallOf(signal);
      const rpc = `${method.parent.typeName}/${method.name}`;
      const timeout = deadlineOf(rpc, edge, timeoutMs);
      const headers = headersOf(header);
      if (edge !== undefined) {
        headers.set("x-forwarded-for", edge.clientIp);
        headers.set("x-forwarded-proto", edge.proto);
        if (edge.host !== undefined) headers.set("x-forwarded-host", edge.host);
      }
      injectTraceHeaders((key, value) => headers.set(key, value));
      // The request messages can be read once, so only a call that never left is retried; the
      // response is a stream, so the connection layer's own errors surface while it is read.
      return withRetries(
        false,
        Date.now() + timeout,
        (instance, remainingMs) =>
          instance.transport.stream(method, signal, remainingMs, headers, input, contextValues),
        (error) => {
          const connectError = ConnectError.from(error);
          const unsent = neverSent(connectError);
          return { sent: !unsent, transport: unsent, error: connectError };
        },
      );
    },
  };
}

/**
 * How long an instance's HTTP/2 session must have carried no unary call before calls go back to
 * its HTTP/1.1 lane. A/B runs at saturation (bench/gateway/RESULTS.md): with 5 ms a saturated
 * gateway still found the session quiet often enough to lose ~5 % throughput, with 20 or 50 ms it
 * did not; 50 ms kept more calls on HTTP/2 after a burst at half load (higher p50).
 */
const LANE_QUIET_MS = 20;

/**
 * A unary response's headers as received (lower-case names, `trailer-` ones included), for callers
 * in the gateway that read one or two of them without paying for two Headers objects.
 */
const plainResponseHeaders = Symbol("plainResponseHeaders");

interface WithPlainHeaders {
  readonly [plainResponseHeaders]: Readonly<Record<string, string>>;
}

/** The headers a unary response from this transport arrived with; undefined for any other response. */
export function plainHeadersOf(response: object): Readonly<Record<string, string>> | undefined {
  return (response as Partial<WithPlainHeaders>)[plainResponseHeaders];
}

function isPlainRecord(header: HeadersInit | undefined): header is Record<string, string> {
  return (
    header !== undefined &&
    !(header instanceof Headers) &&
    !Array.isArray(header) &&
    Object.getPrototypeOf(header) === Object.prototype
  );
}

/** The Connect response to a unary call, its headers made into Headers objects only when read. */
function unaryResponseOf<I extends DescMessage, O extends DescMessage>(
  upstream: string,
  method: DescMethodUnary<I, O>,
  result: UnaryResult,
): UnaryResponse<I, O> {
  let message;
  try {
    message = fromBinary(method.output, result.body);
  } catch (cause) {
    throw new ConnectError(
      `the ${upstream} service sent a response that does not parse`,
      Code.Internal,
      undefined,
      undefined,
      cause,
    );
  }
  // Headers objects are dear and the REST handler never reads them: built on first use.
  let split: { header: Headers; trailer: Headers } | undefined;
  const response: UnaryResponse<I, O> & WithPlainHeaders = {
    [plainResponseHeaders]: result.headers,
    stream: false,
    service: method.parent,
    method,
    get header() {
      return (split ??= splitUnaryHeaders(result.headers)).header;
    },
    get trailer() {
      return (split ??= splitUnaryHeaders(result.headers)).trailer;
    },
    message,
  };
  return response;
}

/** connect-node's errors for a call that never reached the upstream (the connection failed first). */
function neverSent(error: ConnectError): boolean {
  if (error.code !== Code.Unavailable && error.code !== Code.Internal) return false;
  let cause: unknown = error.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (
      typeof code === "string" &&
      /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(code)
    )
      return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return /ECONNREFUSED|REFUSED_STREAM/.test(error.rawMessage);
}

/** Connect unary sends trailers as `trailer-`-prefixed headers: one pass splits them off. */
function splitUnaryHeaders(incoming: Readonly<Record<string, string>>): {
  header: Headers;
  trailer: Headers;
} {
  const header = new Headers();
  const trailer = new Headers();
  for (const key in incoming) {
    const value = incoming[key] as string;
    if (key.startsWith("trailer-")) trailer.append(key.slice("trailer-".length), value);
    else header.append(key, value);
  }
  return { header, trailer };
}
