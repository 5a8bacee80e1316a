import http2 from "node:http2";
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { injectTraceHeaders } from "@zero/kit/tracing";
import { asConnectError } from "./error-body.js";
import { REFLECTION_SERVICES, type EdgeReflection } from "./edge-reflection.js";
import type { EdgeAccess } from "./edge-access.js";
import { requestHeader, type Exchange, type GatewayRequest } from "./http-exchange.js";
import { binaryContentType, createBase64Decoder, textContentType } from "./grpc-web-text.js";
import { discardRequestBody } from "./request-body.js";
import { sendRpcError, type RpcProtocol } from "./rpc-error-response.js";
import { envelopeOutcomeFor, grpcTrailerStatus } from "./rpc-outcome.js";
import { upstreamFailure, type Upstream, type Upstreams } from "./upstreams.js";

// Connect, gRPC and gRPC-Web calls are forwarded to the owning service byte for byte: the gateway
// reads only the path and headers (to route and to apply the method's access policy) and streams
// both bodies through, copying headers and trailers. It never decodes a message, so every
// protocol feature (streaming, compression, deadlines in grpc-timeout / connect-timeout-ms)
// works as it does against the service directly. The one translation: gRPC-Web text mode
// (base64), which the services do not speak, becomes binary gRPC-Web on the way up and base64
// again on the way down (grpc-web-text.ts).

export interface Passthrough {
  /** The protocol of a request addressed to `/<package.Service>/<Method>`, or undefined for REST. */
  protocolOf(req: GatewayRequest, path: string, query: string): RpcProtocol | undefined;
  /** Forwards (or refuses) the call; resolves with a metrics label once the response is done. */
  handle(exchange: Exchange, protocol: RpcProtocol): Promise<string>;
}

const procedurePath = /^\/([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\/([A-Za-z_][A-Za-z0-9_]*)$/;

// Connection-specific headers (RFC 9113 §8.2.2) and those the HTTP/2 client sets itself.
const notForwarded = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
  "te",
  "traceparent",
  "tracestate",
  "x-request-id",
]);
const notReturned = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "date",
]);

export function createPassthrough(opts: {
  upstreams: Upstreams;
  access: EdgeAccess;
  /** Answers gRPC server reflection for the routed services at the edge (edge-reflection.ts). */
  reflection?: EdgeReflection;
}): Passthrough {
  return {
    protocolOf(req, path, query) {
      if (!procedurePath.test(path)) return undefined;
      const contentType = (requestHeader(req, "content-type") ?? "").toLowerCase();
      if (contentType.startsWith("application/grpc-web-text")) return "grpc-web-text";
      if (contentType.startsWith("application/grpc-web")) return "grpc-web";
      if (contentType.startsWith("application/grpc")) return "grpc";
      if (contentType.startsWith("application/connect+")) return "connect-stream";
      const unaryType = /^application\/(json|proto)(;|$)/.test(contentType);
      // `Connect-Protocol-Version` is optional for unary calls (the services do not require it
      // either), so `curl -H 'content-type: application/json' -d '{…}' …/pkg.Service/Method` works.
      if (req.method === "POST" && unaryType) return "connect-unary";
      // Connect GET: the message travels in the query (`?connect=v1&encoding=json&message=…`).
      if (req.method === "GET" && /(^|&)encoding=/.test(query) && /(^|&)message=/.test(query))
        return "connect-unary";
      return undefined;
    },

    async handle(exchange, protocol) {
      const { req } = exchange;
      const contentType = requestHeader(req, "content-type") ?? defaultContentType(protocol);
      const refuse = (error: unknown): void => {
        const { error: connectError, unexpected } = asConnectError(error);
        if (unexpected)
          exchange.logger.error({ err: error, path: exchange.path }, "unexpected error forwarding an RPC");
        discardRequestBody(req);
        sendRpcError(exchange, protocol, connectError, contentType);
      };

      const [, serviceName = "", methodName = ""] = procedurePath.exec(exchange.path) ?? [];
      if (opts.reflection !== undefined && REFLECTION_SERVICES.has(serviceName)) {
        await opts.reflection(exchange);
        return `${serviceName}/${methodName}`;
      }
      const target = opts.upstreams.resolve(serviceName, methodName);
      if (!target) {
        refuse(
          new ConnectError(
            `${serviceName}/${methodName} is not a method this gateway routes`,
            Code.Unimplemented,
          ),
        );
        return "unmatched";
      }
      const label = `${serviceName}/${methodName}`;
      try {
        await opts.access.authorize(target.method, requestHeader(req, "authorization"));
      } catch (error) {
        refuse(error);
        return label;
      }

      let upstreamStream: ClientHttp2Stream;
      try {
        upstreamStream = await target.upstream.sessions.request(
          req.method ?? "POST",
          exchange.path + (exchange.query === "" ? "" : `?${exchange.query}`),
          forwardedHeaders(req.headers, exchange.requestId, protocol),
          {},
        );
      } catch (error) {
        refuse(upstreamFailure(target.upstream, error) ?? error);
        return label;
      }
      await pipeCall(exchange, protocol, contentType, target.upstream, upstreamStream);
      return label;
    },
  };
}

function defaultContentType(protocol: RpcProtocol): string {
  switch (protocol) {
    case "grpc":
      return "application/grpc+proto";
    case "grpc-web":
      return "application/grpc-web+proto";
    case "grpc-web-text":
      return "application/grpc-web-text+proto";
    case "connect-stream":
      return "application/connect+proto";
    case "connect-unary":
      return "application/json";
  }
}

function forwardedHeaders(
  incoming: IncomingHttpHeaders,
  requestId: string,
  protocol: RpcProtocol,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [key, value] of Object.entries(incoming)) {
    if (value === undefined || key.startsWith(":") || notForwarded.has(key)) continue;
    headers[key] = value;
  }
  // gRPC servers require it; the HTTP/2 client accepts no other value.
  if (protocol === "grpc") headers.te = "trailers";
  // Services speak binary gRPC-Web only: the gateway decodes the base64 body on the way.
  if (protocol === "grpc-web-text") {
    headers["content-type"] = binaryContentType(
      String(headers["content-type"] ?? "application/grpc-web-text"),
    );
    delete headers["content-length"];
  }
  headers["x-request-id"] = requestId;
  // The service's span becomes a child of the gateway's span for this request.
  injectTraceHeaders((key, value) => (headers[key] = value));
  return headers;
}

/** Streams the request up and the response down, trailers included; settles when both are done. */
function pipeCall(
  exchange: Exchange,
  protocol: RpcProtocol,
  contentType: string,
  upstream: Upstream,
  upstreamStream: ClientHttp2Stream,
): Promise<void> {
  const { req, res } = exchange;
  // gRPC's outcome arrives in trailers; gRPC-Web's and Connect streaming's in the body's last envelope.
  const envelopes = envelopeOutcomeFor(protocol);
  return new Promise<void>((resolve) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      const outcome = envelopes?.status();
      if (outcome !== undefined) exchange.outcomeStatus = outcome;
      // The upstream answered before reading everything (it refused the call): drop the rest.
      if (!req.complete) discardRequestBody(req);
      resolve();
    };

    // Client gone: cancel upstream so the service stops working for nobody.
    const onClientGone = (): void => {
      if (!upstreamStream.destroyed) upstreamStream.close(http2.constants.NGHTTP2_CANCEL);
      settle();
    };
    exchange.signal.addEventListener("abort", onClientGone, { once: true });

    req.on("error", onClientGone);
    if (protocol === "grpc-web-text") {
      const decoder = createBase64Decoder();
      decoder.on("error", (error) => {
        if (settled) return;
        exchange.logger.debug({ err: error }, "grpc-web-text request body is not base64");
        if (!upstreamStream.destroyed) upstreamStream.close(http2.constants.NGHTTP2_CANCEL);
        if (!res.headersSent) {
          sendRpcError(
            exchange,
            protocol,
            new ConnectError(error.message, Code.InvalidArgument),
            contentType,
          );
        } else {
          res.destroy();
        }
        settle();
      });
      req.pipe(decoder).pipe(upstreamStream);
    } else {
      req.pipe(upstreamStream);
    }

    upstreamStream.on("response", (headers, flags) => {
      if (settled) return;
      const status = Number(headers[":status"] ?? 200);
      const outgoing: OutgoingHttpHeaders = {};
      for (const [key, value] of Object.entries(headers)) {
        if (value === undefined || key.startsWith(":") || notReturned.has(key)) continue;
        outgoing[key] = value;
      }
      outgoing["x-request-id"] = exchange.requestId;
      if (protocol === "grpc-web-text") {
        // Re-encoded below: the length changes, and the caller asked for text.
        delete outgoing["content-length"];
        const type = outgoing["content-type"];
        if (typeof type === "string") outgoing["content-type"] = textContentType(type);
      }
      // A trailers-only gRPC response (the upstream refused the call) must stay trailers-only.
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      if (endStream && protocol === "grpc") exchange.outcomeStatus = grpcTrailerStatus(headers);
      if (endStream && "stream" in res) {
        res.stream.respond({ ...outgoing, ":status": status }, { endStream: true });
        settle();
        return;
      }
      res.writeHead(status, outgoing);
      if (endStream) {
        res.end();
        settle();
      }
    });

    upstreamStream.on("data", (chunk: Buffer) => {
      upstream.sessions.notifyResponseByteRead(upstreamStream);
      envelopes?.push(chunk);
      const out = res as Writable;
      const data = protocol === "grpc-web-text" ? chunk.toString("base64") : chunk;
      if (!out.write(data)) {
        upstreamStream.pause();
        out.once("drain", () => upstreamStream.resume());
      }
    });

    upstreamStream.on("trailers", (trailers: IncomingHttpHeaders) => {
      // HTTP/2 trailers (gRPC). HTTP/1.1 callers speak gRPC-Web or Connect, whose trailers travel
      // in the body, so there is nothing to add for them. (Only a gRPC request's HTTP/2 response
      // is kept open for trailers: @zero/kit/http2-end-stream.)
      exchange.outcomeStatus = grpcTrailerStatus(trailers);
      if (!("stream" in res)) return;
      const outgoing: OutgoingHttpHeaders = {};
      for (const [key, value] of Object.entries(trailers)) {
        if (value !== undefined && !key.startsWith(":")) outgoing[key] = value;
      }
      res.addTrailers(outgoing);
    });

    // Cut by the gateway (balanced-sessions.ts: the call's deadline passed; a client that left is
    // settled above) — and perhaps while the client was still sending its request.
    const unanswered = (otherwise: string): ConnectError =>
      upstreamStream.rstCode !== http2.constants.NGHTTP2_CANCEL
        ? new ConnectError(otherwise, Code.Unavailable)
        : new ConnectError(
            req.complete
              ? `the ${upstream.name} service did not answer before the call's deadline`
              : "the call's deadline passed while its request was still arriving: send it faster, or allow more time",
            Code.DeadlineExceeded,
          );

    upstreamStream.on("end", () => {
      if (settled) return;
      if (!res.headersSent) {
        sendRpcError(
          exchange,
          protocol,
          unanswered(`the ${upstream.name} service sent no response`),
          contentType,
        );
      } else if (!res.writableEnded) {
        res.end();
      }
      settle();
    });

    upstreamStream.on("error", (error) => {
      if (settled) return;
      exchange.logger.debug({ err: error, upstream: upstream.name }, "upstream stream failed");
      if (!res.headersSent) {
        const failure =
          upstreamFailure(upstream, error) ??
          new ConnectError(`the ${upstream.name} service failed the call`, Code.Unavailable);
        sendRpcError(exchange, protocol, failure, contentType);
      } else if ("stream" in res) {
        // Mid-response: reset the caller's stream so it sees the failure instead of a short body.
        res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      } else {
        res.destroy();
      }
      settle();
    });

    upstreamStream.on("close", () => {
      // A stream closed by RST_STREAM without 'end' or 'error' (e.g. upstream cancelled it).
      if (!settled && !res.writableEnded) {
        if (!res.headersSent) {
          sendRpcError(
            exchange,
            protocol,
            unanswered(`the ${upstream.name} service reset the call`),
            contentType,
          );
        } else {
          res.destroy();
        }
      }
      settle();
    });
  });
}
