import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";

// One Connect unary call (binary) to an upstream instance, whichever connection carries it — a
// stream on the instance's HTTP/2 session (connect-unary-call.ts) or a request on its HTTP/1.1
// lane (connect-unary-http1.ts): what is sent, what comes back, how a failure is told apart, and
// the bookkeeping both share.

export interface UnaryExchange {
  /** `/<package.Service>/<Method>`. */
  readonly path: string;
  /**
   * Application headers, built for this call: the protocol's own are set on this object itself
   * (no copy per attempt — the gateway's hot path) by `addConnectUnaryHeaders`.
   */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Uint8Array;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** A larger response is refused (the gateway must not buffer without bound). */
  readonly maxResponseBytes: number;
  /**
   * Whether running out of time counts against the instance (its circuit breaker): not when the
   * caller chose a deadline shorter than the operator's for the call — a client asking for 1 ms
   * must not be able to open a service's breaker for everyone. Default true.
   */
  readonly timeoutBlamesUpstream?: boolean;
}

export interface UnaryResult {
  /** Lower-case names, without HTTP/2 pseudo-headers. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/**
 * Why a call failed, and whether the upstream may have seen it: a call that never left (no
 * connection, stream refused) is safe to send elsewhere whatever the method does.
 */
export class UnaryCallFailure extends Error {
  constructor(
    readonly error: ConnectError,
    readonly sent: boolean,
    /** A transport failure (reset, lost connection, timeout) rather than an answer from the service. */
    readonly transport: boolean,
  ) {
    super(error.message);
  }
}

/**
 * Sets the protocol's request headers of a Connect unary call (binary) on the call's headers and
 * returns them. Each attempt sets its own remaining deadline; attempts are sequential.
 */
export function addConnectUnaryHeaders(call: UnaryExchange, timeoutMs: number): OutgoingHttpHeaders {
  const headers = call.headers;
  headers["content-type"] = "application/proto";
  headers["connect-protocol-version"] = "1";
  headers["connect-timeout-ms"] = String(timeoutMs);
  return headers;
}

/** The answer as it arrives: status and headers first, then body chunks, then its end. */
export interface AnswerSink {
  /** `headers` as `plainHeaders` makes them. */
  head(status: number, headers: Record<string, string>): void;
  chunk(chunk: Buffer): void;
  end(): void;
  fail(failure: UnaryCallFailure): void;
  /** True once the call is settled (answered, failed, timed out or cancelled). */
  readonly settled: boolean;
}

/**
 * What both unary calls (a stream on the HTTP/2 session, a request on the HTTP/1.1 lane) do around
 * the exchange itself: settle once; fail at the deadline (the upstream enforces it too, through
 * `connect-timeout-ms`: this covers one that cannot) or when the caller goes away; collect the body
 * within `maxResponseBytes`; turn a non-200 answer into its Connect error; and on any failure,
 * `cancel` the exchange. `start` sends the call, feeding what comes back into the sink; it runs only
 * while the caller is still there.
 */
export function settleUnaryExchange(
  call: UnaryExchange,
  timeoutMs: number,
  cancel: () => void,
  start: (sink: AnswerSink) => void,
): Promise<UnaryResult> {
  return new Promise<UnaryResult>((resolve, reject) => {
    let status = 0;
    let headers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let length = 0;
    let settled = false;

    const finish = (failure: UnaryCallFailure | undefined, result?: UnaryResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      call.signal?.removeEventListener("abort", onAbort);
      if (failure) {
        cancel();
        reject(failure);
      } else {
        resolve(result as UnaryResult);
      }
    };
    const onAbort = (): void =>
      finish(new UnaryCallFailure(new ConnectError("the caller went away", Code.Canceled), true, false));
    const timer = setTimeout(
      () =>
        finish(
          new UnaryCallFailure(
            new ConnectError(`the upstream did not answer within ${timeoutMs} ms`, Code.DeadlineExceeded),
            true,
            call.timeoutBlamesUpstream !== false,
          ),
        ),
      timeoutMs,
    );
    if (call.signal?.aborted) {
      onAbort();
      return;
    }
    call.signal?.addEventListener("abort", onAbort, { once: true });

    start({
      head(answerStatus, answerHeaders) {
        status = answerStatus;
        headers = answerHeaders;
      },
      chunk(chunk) {
        if (settled) return;
        length += chunk.length;
        if (length > call.maxResponseBytes) {
          finish(
            new UnaryCallFailure(
              new ConnectError(
                `the upstream's response is larger than ${call.maxResponseBytes} bytes`,
                Code.ResourceExhausted,
              ),
              true,
              false,
            ),
          );
          return;
        }
        chunks.push(chunk);
      },
      end() {
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
        if (status === 200) finish(undefined, { headers, body });
        else finish(new UnaryCallFailure(connectErrorOf(status, headers, body), true, false));
      },
      fail: (failure) => finish(failure),
      get settled() {
        return settled;
      },
    });
  });
}

/** A Connect unary error: the JSON error body, or a code from the HTTP status when there is none. */
export function connectErrorOf(
  status: number,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
): ConnectError {
  const metadata = new Headers();
  for (const name in headers) metadata.set(name, headers[name] as string);
  const fallback = new ConnectError(
    `the upstream answered HTTP ${status || "(no status)"}`,
    status === 0 ? Code.Unavailable : codeFromHttpStatus(status),
    metadata,
  );
  try {
    return errorFromJsonBytes(body, metadata, fallback);
  } catch {
    return fallback;
  }
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);

/** Response headers as one string per lower-case name, without pseudo- and hop-by-hop headers. */
export function plainHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const key in incoming) {
    if (key.charCodeAt(0) === 58 /* ":" */ || HOP_BY_HOP.has(key)) continue;
    const value = incoming[key];
    if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return headers;
}
