import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Logger } from "@zero/kit/log";
import { asConnectError, httpErrorBody, retryAfterSeconds } from "./error-body.js";

// One request/response pair as the gateway handles it, whichever HTTP version it arrived on.
// Node's http and http2-compat objects share the surface used here.

export type GatewayRequest = IncomingMessage | Http2ServerRequest;
export type GatewayResponse = ServerResponse | Http2ServerResponse;

export interface Exchange {
  readonly req: GatewayRequest;
  readonly res: GatewayResponse;
  /** The path without the query, exactly as sent (still percent-encoded). */
  readonly path: string;
  /** The raw query string without `?` ("" when absent). */
  readonly query: string;
  /** `x-request-id` as received (when well-formed) or generated; forwarded and echoed back. */
  readonly requestId: string;
  /** Aborted when the client goes away before the response is complete. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /**
   * For calls whose HTTP status says nothing of their outcome (gRPC, gRPC-Web and Connect streaming
   * answer 200 and carry their code at the end): the HTTP status of that code, for the metrics, the
   * access log and the span (rpc-outcome.ts). Set by whatever learns the outcome.
   */
  outcomeStatus?: number;
}

/** A single header value (the first, when a client repeated it). */
export function requestHeader(req: GatewayRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function sendJson(
  exchange: Exchange,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  const { res } = exchange;
  if (res.headersSent) {
    // Too late for a clean error: cut the response so the client cannot mistake it for complete.
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "x-request-id": exchange.requestId,
    ...headers,
  });
  res.end(text);
}

/**
 * Writes any error in the REST shape. `httpStatus` overrides the status derived from the code
 * for the HTTP-level refusals that have no gRPC code of their own (405, 413, 415).
 */
export function sendHttpError(
  exchange: Exchange,
  error: unknown,
  opts: { httpStatus?: number; headers?: Record<string, string> } = {},
): void {
  const { error: connectError, unexpected } = asConnectError(error);
  if (unexpected)
    exchange.logger.error({ err: error, path: exchange.path }, "unexpected error serving a REST request");
  const { status, body } = httpErrorBody(connectError);
  const httpStatus = opts.httpStatus ?? status;
  body.error.code = httpStatus;
  // A service's throttle says when to come back (RetryInfo); the gateway's own limiter sets it itself.
  const retryAfter = retryAfterSeconds(connectError);
  const headers =
    retryAfter === undefined ? opts.headers : { "retry-after": String(retryAfter), ...opts.headers };
  sendJson(exchange, httpStatus, body, headers);
}
