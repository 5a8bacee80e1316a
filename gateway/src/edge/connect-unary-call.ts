import http2 from "node:http2";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";

// One Connect unary call (binary) on an upstream instance's shared HTTP/2 session, written against
// node:http2 directly. It is the gateway's hot path — every unary REST request ends here — and
// connect-node's generic client costs more per call (a serializer lookup per call, linked abort
// controllers, async iterables, a DOMException per call). Only what the gateway needs: no
// compression (none is offered, so none comes back), no streaming (that goes through connect-node).
//
// While few calls are in flight, calls take the instance's HTTP/1.1 lane instead
// (connect-unary-http1.ts, which says why both).

export interface UnaryExchange {
  /** `/<package.Service>/<Method>`. */
  readonly path: string;
  /** Application headers; the protocol's own are added here. */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Uint8Array;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** A larger response is refused (the gateway must not buffer without bound). */
  readonly maxResponseBytes: number;
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

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

export async function sendConnectUnary(
  sessions: Http2SessionManager,
  call: UnaryExchange,
): Promise<UnaryResult> {
  const timeoutMs = Math.max(1, Math.floor(call.timeoutMs));
  const headers: OutgoingHttpHeaders = {
    ...call.headers,
    "content-type": "application/proto",
    "connect-protocol-version": "1",
    "connect-timeout-ms": String(timeoutMs),
  };
  let stream: http2.ClientHttp2Stream;
  try {
    stream = await sessions.request("POST", call.path, headers, {});
  } catch (cause) {
    throw new UnaryCallFailure(
      new ConnectError("connection to the upstream failed", Code.Unavailable, undefined, undefined, cause),
      false,
      true,
    );
  }

  return new Promise<UnaryResult>((resolve, reject) => {
    let status = 0;
    let responseHeaders: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let length = 0;
    let settled = false;

    const finish = (failure: UnaryCallFailure | undefined, result?: UnaryResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      call.signal?.removeEventListener("abort", onAbort);
      if (failure) {
        if (!stream.closed) stream.close(NGHTTP2_CANCEL);
        reject(failure);
      } else {
        resolve(result as UnaryResult);
      }
    };
    const onAbort = (): void =>
      finish(new UnaryCallFailure(new ConnectError("the caller went away", Code.Canceled), true, false));
    // The upstream enforces the deadline too (connect-timeout-ms); this covers one that cannot.
    const timer = setTimeout(
      () =>
        finish(
          new UnaryCallFailure(
            new ConnectError(`the upstream did not answer within ${timeoutMs} ms`, Code.DeadlineExceeded),
            true,
            true,
          ),
        ),
      timeoutMs,
    );
    if (call.signal?.aborted) {
      onAbort();
      return;
    }
    call.signal?.addEventListener("abort", onAbort, { once: true });

    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = plainHeaders(h);
    });
    stream.on("data", (chunk: Buffer) => {
      sessions.notifyResponseByteRead(stream);
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
    });
    stream.on("end", () => {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
      if (status === 200) {
        finish(undefined, { headers: responseHeaders, body });
        return;
      }
      finish(new UnaryCallFailure(connectErrorOf(status, responseHeaders, body), true, false));
    });
    stream.on("error", (cause: Error) => {
      const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || cause.message.includes("REFUSED_STREAM");
      finish(
        new UnaryCallFailure(
          new ConnectError(
            "the upstream connection failed during the call",
            Code.Unavailable,
            undefined,
            undefined,
            cause,
          ),
          !refused,
          true,
        ),
      );
    });
    stream.on("close", () => {
      if (settled) return;
      // RST_STREAM(REFUSED_STREAM): the upstream guarantees it did not process the call (RFC 9113 §8.7).
      const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM;
      finish(
        new UnaryCallFailure(
          new ConnectError(
            refused ? "the upstream refused the call (it is shutting down)" : "the upstream reset the call",
            Code.Unavailable,
          ),
          !refused,
          true,
        ),
      );
    });
    stream.end(call.body);
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
