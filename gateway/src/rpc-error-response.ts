import { Http2ServerResponse } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorToJson,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { Exchange } from "./http-exchange.js";

/** The RPC protocols the gateway passes through, told apart by content type (see passthrough.ts). */
export type RpcProtocol = "grpc" | "grpc-web" | "grpc-web-text" | "connect-unary" | "connect-stream";

/**
 * Answers an RPC the gateway refuses itself (unknown method, access policy, upstream down) in the
 * caller's own protocol, so every client library surfaces a proper status instead of a transport
 * error:
 * - gRPC: a trailers-only response (HEADERS with END_STREAM carrying grpc-status);
 * - gRPC-Web: HTTP 200 whose body is a single trailer frame (flag 0x80);
 * - Connect unary: the HTTP status of the code with the JSON error body;
 * - Connect streaming: HTTP 200 with an end-stream message (flag 0x02) holding the error.
 */
export function sendRpcError(
  exchange: Exchange,
  protocol: RpcProtocol,
  error: ConnectError,
  contentType: string,
): void {
  const { res } = exchange;
  exchange.outcomeStatus = codeToHttpStatus(error.code);
  // The client went away (e.g. its deadline passed and it reset the HTTP/2 stream): nobody is left
  // to answer, and writing to a reset stream throws outside any request handler.
  if (res.destroyed || (res instanceof Http2ServerResponse && (res.stream.destroyed || res.stream.closed)))
    return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const common = { "x-request-id": exchange.requestId };
  switch (protocol) {
    case "grpc": {
      const trailer = setTrailerStatus(new Headers(), error);
      const headers: Record<string, string | number> = {
        ...common,
        ":status": 200,
        "content-type": contentType,
      };
      trailer.forEach((value, key) => (headers[key] = value));
      if (res instanceof Http2ServerResponse) {
        // The compat API cannot promise END_STREAM on the HEADERS frame; the core API can.
        res.stream.respond(headers, { endStream: true });
        return;
      }
      delete headers[":status"];
      res.writeHead(200, headers);
      res.end();
      return;
    }
    case "grpc-web":
    case "grpc-web-text": {
      const trailer = trailerSerialize(setTrailerStatus(new Headers(), error));
      const frame = new Uint8Array(5 + trailer.length);
      frame[0] = trailerFlag;
      new DataView(frame.buffer).setUint32(1, trailer.length);
      frame.set(trailer, 5);
      const body =
        protocol === "grpc-web-text"
          ? Buffer.from(Buffer.from(frame).toString("base64"))
          : Buffer.from(frame);
      res.writeHead(200, { ...common, "content-type": contentType, "content-length": body.length });
      res.end(body);
      return;
    }
    case "connect-stream": {
      const json = new TextEncoder().encode(
        JSON.stringify(endStreamToJson(error.metadata, error, undefined)),
      );
      const frame = new Uint8Array(5 + json.length);
      frame[0] = endStreamFlag;
      new DataView(frame.buffer).setUint32(1, json.length);
      frame.set(json, 5);
      res.writeHead(200, { ...common, "content-type": contentType, "content-length": frame.length });
      res.end(Buffer.from(frame));
      return;
    }
    case "connect-unary": {
      const body = JSON.stringify(errorToJson(error, undefined));
      res.writeHead(codeToHttpStatus(error.code), {
        ...common,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
      return;
    }
  }
}
