import type { DescMethodStreaming, DescMethodUnary, JsonValue, Message, Registry } from "@bufbuild/protobuf";
import { isReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { FieldMaskSchema, type FieldMask } from "@bufbuild/protobuf/wkt";
import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import type { StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { DomainError, invalidArguments } from "@zero/kit/errors";
import { createApiDocs, type ApiDocs } from "./docs-page.js";
import { asConnectError, httpErrorBody } from "./error-body.js";
import type { EdgeAccess } from "./edge-access.js";
import { requestHeader, sendHttpError, sendJson, type Exchange } from "./http-exchange.js";
import { PathDecodeError, type PathBindings } from "./path-template.js";
import { discardRequestBody, readRequestBody, type BodyResult } from "./request-body.js";
import { MAX_JSON_DEPTH, jsonNestingDepth } from "./json-depth.js";
import { firstDuplicateKey } from "./json-duplicate-keys.js";
import { findMissingRequiredFields, type PartialUpdate } from "./required-fields.js";
import type { Route, RouteLookup, RouteMatch, RouteTable } from "./route-table.js";
import { transcodeRequest, transcodeResponse } from "./transcode.js";
import { plainHeadersOf } from "./edge/balanced-transport.js";
import { upstreamFailure, type Upstreams } from "./upstreams.js";

export interface RestHandlerOptions {
  readonly routes: RouteTable;
  readonly upstreams: Upstreams;
  readonly access: EdgeAccess;
  /** Bodies above this are refused with 413. */
  readonly maxBodyBytes: number;
  /** Deadline of the upstream call. */
  readonly timeoutMs: number;
  /** Resolves `google.protobuf.Any` in JSON bodies. */
  readonly registry?: Registry;
  /** `/openapi.json` and `/docs`; default: built from `routes` at start-up. */
  readonly apiDocs?: ApiDocs;
}

/**
 * Serves one REST request; resolves with the matched route's label (`POST /v1/echo`) for metrics.
 * `matched` is the route table's answer for this request when the caller already looked it up.
 */
export type RestHandler = (exchange: Exchange, matched?: RouteMatch) => Promise<string>;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function createRestHandler(opts: RestHandlerOptions): RestHandler {
  // The API's description is served beside the API, from the same route table.
  const apiDocs = opts.apiDocs ?? createApiDocs({ routes: opts.routes.routes });
  return async (exchange, matched) => {
    const { req } = exchange;
    const httpMethod = req.method ?? "GET";
    const docs = apiDocs.serve(exchange);
    if (docs !== undefined) return docs;

    let lookup: RouteLookup;
    try {
      lookup = matched ?? opts.routes.lookup(httpMethod, exchange.path);
    } catch (error) {
      if (!(error instanceof PathDecodeError)) throw error;
      discardRequestBody(req);
      sendHttpError(exchange, new DomainError("invalid_argument", error.message));
      return "unmatched";
    }
    // Unrouted requests are answered without their body: drain it so the connection stays usable.
    if (lookup.kind !== "found") discardRequestBody(req);
    if (lookup.kind === "not-found") {
      sendHttpError(exchange, new ConnectError(`no route for ${httpMethod} ${exchange.path}`, Code.NotFound));
      return "unmatched";
    }
    if (lookup.kind === "method-not-allowed") {
      const allow = lookup.allow.join(", ");
      const error = new ConnectError(
        `${httpMethod} is not allowed on ${exchange.path}: use ${allow}`,
        Code.Unimplemented,
      );
      sendHttpError(exchange, error, { httpStatus: 405, headers: { allow } });
      return "unmatched";
    }

    const { route, bindings } = lookup;
    const label = `${route.httpMethod} ${route.template.source}`;
    try {
      await serve(exchange, route, bindings, opts);
    } catch (error) {
      sendHttpError(exchange, error);
    } finally {
      // Refused before the body was read (401, 403): an unread HTTP/2 body would keep the stream open.
      if (!req.complete) discardRequestBody(req);
    }
    return label;
  };
}

async function serve(
  exchange: Exchange,
  route: Route,
  bindings: PathBindings,
  opts: RestHandlerOptions,
): Promise<void> {
  const { req } = exchange;
  const authorization = requestHeader(req, "authorization");
  // Refuse before reading a byte of the body: an anonymous caller cannot make us buffer 1 MiB.
  await opts.access.authorize(route.method, authorization);

  const reading = readJsonBody(exchange, route, opts.maxBodyBytes);
  const read = reading instanceof Promise ? await reading : reading;
  if (read.kind === "answered") return;
  const body = read.json;

  const message = transcodeRequest(
    route,
    { bindings, query: parseQuery(exchange.query), body },
    opts.registry,
  );
  const missing = findMissingRequiredFields(route.method.input, message, partialUpdateOf(route, message));
  if (missing.length > 0) throw invalidArguments(missing);

  const resolved = opts.upstreams.resolve(route.service.typeName, route.method.name);
  if (!resolved) {
    throw new ConnectError(
      `the service behind ${route.template.source} is not routed by this gateway`,
      Code.Unavailable,
    );
  }
  const { upstream } = resolved;
  const headers = upstreamHeaders(exchange, authorization);

  try {
    if (route.method.methodKind === "unary") {
      const response = await upstream.transport.unary(
        route.method as DescMethodUnary,
        exchange.signal,
        opts.timeoutMs,
        headers,
        message,
      );
      const json = transcodeResponse(route, response.message, opts.registry);
      sendJson(exchange, route.createsResource ? 201 : 200, json, forwardedResponseHeaders(response));
      return;
    }
    if (route.method.methodKind === "server_streaming") {
      const response = await upstream.transport.stream(
        route.method as DescMethodStreaming,
        exchange.signal,
        opts.timeoutMs,
        headers,
        createAsyncIterable([message]),
      );
      await streamResponse(exchange, route, response, opts.registry);
      return;
    }
    throw new ConnectError(
      "client and bidirectional streaming RPCs are not available over REST: use Connect or gRPC",
      Code.Unimplemented,
    );
  } catch (error) {
    throw upstreamFailure(upstream, error) ?? error;
  }
}

/**
 * Response headers a service sets for its REST callers too — an allow-list, so nothing internal
 * (protocol, tracing or other metadata) leaks to the edge: `Idempotent-Replayed: true` when payments
 * replays a stored result for a retried Idempotency-Key (Stripe's header), and `Cache-Control` where
 * a service says how long its answer may be kept (auth's JWKS).
 */
const FORWARDED_RESPONSE_HEADERS = ["idempotent-replayed", "cache-control"] as const;

function forwardedResponseHeaders(response: UnaryResponse): Record<string, string> {
  const forwarded: Record<string, string> = {};
  const plain = plainHeadersOf(response);
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = plain === undefined ? response.header.get(name) : plain[name];
    if (value !== null && value !== undefined) forwarded[name] = value;
  }
  return forwarded;
}

/** The mask of a field-mask PATCH (given, or filled from the body by transcodeRequest). */
function partialUpdateOf(route: Route, message: Message): PartialUpdate | undefined {
  const { updateMaskField, bodyField } = route;
  if (!updateMaskField || !bodyField) return undefined;
  const mask = reflect(route.method.input, message).get(updateMaskField);
  if (!isReflectMessage(mask, FieldMaskSchema)) return undefined;
  return { field: bodyField, mask: (mask.message as FieldMask).paths };
}

/**
 * The query's parameters. A malformed percent-escape or one that makes invalid UTF-8 is a 400, as
 * in the path: URLSearchParams would keep `%ZZ` as it is and turn bad bytes into U+FFFD.
 */
function parseQuery(query: string): URLSearchParams {
  if (query.includes("%")) {
    for (const part of query.split("&")) {
      let valid = /^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(part);
      try {
        if (valid) decodeURIComponent(part.replace(/\+/g, " "));
      } catch {
        valid = false;
      }
      if (!valid) {
        throw new DomainError(
          "invalid_argument",
          `invalid percent-encoding in the query parameter "${part.split("=", 1)[0]}": escape each byte of its UTF-8 as %XX`,
        );
      }
    }
  }
  return new URLSearchParams(query);
}

type JsonBody =
  { readonly kind: "json"; readonly json: JsonValue | undefined } | { readonly kind: "answered" };

/** Parses the body a route takes; answers the 413/415 itself (kind "answered") when it cannot. */
const HTTP_BODY = "google.api.HttpBody";

/**
 * A body field of type `google.api.HttpBody` takes the request's bytes as they came, whatever their
 * content type: a provider's webhook is verified by a signature over the exact bytes, which
 * parsing and re-serialising JSON would change. (HttpBody's JSON form carries them as base64.)
 */
function rawBody(bytes: Uint8Array, req: Exchange["req"]): JsonBody {
  const httpBody = {
    contentType: requestHeader(req, "content-type") ?? "application/octet-stream",
    data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
  };
  return { kind: "json", json: httpBody };
}

/** `application/json` with parameters, of which a charset must be UTF-8 (the plain type is checked first). */
function isUtf8Json(contentType: string): boolean {
  const [mediaType = "", ...params] = contentType.split(";").map((part) => part.trim());
  const charset = params
    .find((p) => p.startsWith("charset="))
    ?.slice("charset=".length)
    .replace(/"/g, "");
  return mediaType === "application/json" && (charset === undefined || charset === "utf-8");
}

/** The body as the route takes it; synchronous when it has already arrived (request-body.ts). */
function readJsonBody(exchange: Exchange, route: Route, limit: number): JsonBody | Promise<JsonBody> {
  // Always read (an absent body ends at once): HTTP/2 requests need not declare a body in a header.
  const result = readRequestBody(exchange.req, limit);
  return result instanceof Promise
    ? result.then((arrived) => jsonBodyOf(exchange, route, limit, arrived))
    : jsonBodyOf(exchange, route, limit, result);
}

function jsonBodyOf(exchange: Exchange, route: Route, limit: number, result: BodyResult): JsonBody {
  const { req } = exchange;
  if (result.kind === "too-large") {
    const error = new DomainError(
      "invalid_argument",
      `the request body is larger than the limit of ${limit} bytes`,
      {
        reason: "BODY_TOO_LARGE",
      },
    );
    // HTTP/1.1: the unread rest of the body makes the connection unusable for another request.
    // (HTTP/2 resets just this stream, and forbids the header.)
    const headers: Record<string, string> = req.httpVersionMajor === 1 ? { connection: "close" } : {};
    sendHttpError(exchange, error, { httpStatus: 413, headers });
    return { kind: "answered" };
  }
  if (result.bytes.length === 0) return { kind: "json", json: undefined };
  const coding = (requestHeader(req, "content-encoding") ?? "identity").trim().toLowerCase();
  if (coding !== "identity" && coding !== "") {
    const error = new DomainError(
      "invalid_argument",
      `unsupported content-encoding "${coding}": send the request body uncompressed`,
      { reason: "UNSUPPORTED_MEDIA_TYPE" },
    );
    sendHttpError(exchange, error, { httpStatus: 415 });
    return { kind: "answered" };
  }

  const bodyType = route.body === "*" ? route.method.input : route.bodyField?.message;
  if (bodyType?.typeName === HTTP_BODY) return rawBody(result.bytes, req);
  if (route.body === "") {
    throw new DomainError(
      "invalid_argument",
      `${route.httpMethod} ${route.template.source} takes no request body: send the fields as query parameters`,
    );
  }
  const contentType = (requestHeader(req, "content-type") ?? "").toLowerCase();
  if (contentType !== "application/json" && !isUtf8Json(contentType)) {
    const error = new DomainError(
      "invalid_argument",
      `unsupported content type "${contentType || "(none)"}": send the body as JSON with content-type: application/json`,
      { reason: "UNSUPPORTED_MEDIA_TYPE" },
    );
    sendHttpError(exchange, error, { httpStatus: 415 });
    return { kind: "answered" };
  }

  let text: string;
  try {
    text = utf8.decode(result.bytes);
  } catch {
    throw new DomainError("invalid_argument", "the request body is not valid UTF-8");
  }
  const depth = jsonNestingDepth(text, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) {
    throw new DomainError(
      "invalid_argument",
      `the request body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`,
      { reason: "JSON_TOO_DEEP" },
    );
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new DomainError(
      "invalid_argument",
      `the request body names "${duplicate.length > 64 ? `${duplicate.slice(0, 64)}…` : duplicate}" twice in one object: send each field once`,
      { reason: "DUPLICATE_JSON_KEY" },
    );
  }
  try {
    return { kind: "json", json: JSON.parse(text) as JsonValue };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new DomainError("invalid_argument", `the request body is not valid JSON: ${detail}`, {
      reason: "MALFORMED_JSON",
    });
  }
}

/**
 * Server streaming over REST: newline-delimited JSON, or Server-Sent Events when the client asks
 * for `text/event-stream`. An error before the first message is a normal error response; after
 * it, the error is the last line/event (the status line is already sent).
 */
async function streamResponse(
  exchange: Exchange,
  route: Route,
  response: StreamResponse,
  registry: Registry | undefined,
): Promise<void> {
  const { res } = exchange;
  // Both HTTP/1.1 and HTTP/2 responses are Writables; the union of their overloads is not callable.
  const out = res as Writable;
  const sse = (requestHeader(exchange.req, "accept") ?? "").includes("text/event-stream");
  const frame = (json: unknown, event?: string): string =>
    sse
      ? `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(json)}\n\n`
      : `${JSON.stringify(json)}\n`;
  const iterator = response.message[Symbol.asyncIterator]();
  // Awaited before the status line, so an upstream that fails at once gets a proper error status.
  const first = await iterator.next();
  res.writeHead(200, {
    "content-type": sse ? "text/event-stream; charset=utf-8" : "application/x-ndjson; charset=utf-8",
    "cache-control": "no-cache",
    "x-request-id": exchange.requestId,
  });
  const closed = new Promise<void>((resolve) => out.once("close", resolve));
  try {
    for (let step = first; step.done !== true; step = await iterator.next()) {
      if (res.destroyed) return;
      const json = transcodeResponse(route, step.value, registry);
      if (!out.write(frame(json)))
        await Promise.race([new Promise((resolve) => out.once("drain", resolve)), closed]);
    }
  } catch (error) {
    if (res.destroyed || exchange.signal.aborted) return;
    out.write(frame(httpErrorBody(asConnectError(error).error).body, "error"));
  }
  res.end();
}

// What a REST caller's request tells the service beyond the message: who (token), which request
// (id, for logs), whether it is a retry (idempotency key), and from where (client address and
// agent, for sessions and audit). Nothing else crosses: no cookies, no hop-by-hop headers.
// `webhook-*` (Standard Webhooks: id, timestamp, signature) authenticate raw-body callbacks.
const FORWARDED_HEADERS = [
  "idempotency-key",
  "user-agent",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
] as const;

function upstreamHeaders(exchange: Exchange, authorization: string | undefined): Record<string, string> {
  // A plain record: the upstream transport sends it as it is unless an interceptor reads it.
  const headers: Record<string, string> = { "x-request-id": exchange.requestId };
  if (authorization !== undefined) headers.authorization = authorization;
  for (const name of FORWARDED_HEADERS) {
    const value = requestHeader(exchange.req, name);
    if (value !== undefined) headers[name] = value;
  }
  // The peer's address; the edge's upstream transport replaces it with the client address its
  // trusted-proxy logic computed (edge/client-address.ts), when it knows the call.
  const client = exchange.req.socket.remoteAddress;
  if (client !== undefined) headers["x-forwarded-for"] = client;
  return headers;
}
