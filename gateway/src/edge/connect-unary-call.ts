import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import {
  UnaryCallFailure,
  addConnectUnaryHeaders,
  plainHeaders,
  settleUnaryExchange,
  type UnaryExchange,
  type UnaryResult,
} from "./unary-exchange.js";

// One Connect unary call (binary) on an upstream instance's shared HTTP/2 session, written against
// node:http2 directly. It is the gateway's hot path — every unary REST request ends here — and
// connect-node's generic client costs more per call (a serializer lookup per call, linked abort
// controllers, async iterables, a DOMException per call). Only what the gateway needs: no
// compression (none is offered, so none comes back), no streaming (that goes through connect-node).
//
// While this session has been quiet (no unary call for 20 ms), calls take the instance's HTTP/1.1
// lane instead (balanced-transport.ts decides; connect-unary-http1.ts says why both).

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

export function sendConnectUnary(sessions: Http2SessionManager, call: UnaryExchange): Promise<UnaryResult> {
  const timeoutMs = Math.max(1, Math.floor(call.timeoutMs));
  const headers = addConnectUnaryHeaders(call, timeoutMs);
  // then() rather than async/await: one promise and one microtask turn less per call.
  return sessions.request("POST", call.path, headers, {}).then(
    (stream) => exchangeOn(stream, call, timeoutMs),
    (cause: unknown) => {
      throw new UnaryCallFailure(
        new ConnectError("connection to the upstream failed", Code.Unavailable, undefined, undefined, cause),
        false,
        true,
      );
    },
  );
}

function exchangeOn(
  stream: http2.ClientHttp2Stream,
  call: UnaryExchange,
  timeoutMs: number,
): Promise<UnaryResult> {
  return settleUnaryExchange(
    call,
    timeoutMs,
    () => {
      if (!stream.closed) stream.close(NGHTTP2_CANCEL);
    },
    (answer) => {
      stream.on("response", (h) => answer.head(Number(h[":status"]), plainHeaders(h)));
      // No `notifyResponseByteRead` per chunk: the session manager marks the connection alive on the
      // response headers itself, and a unary answer follows them at once — each notification
      // re-arms its ping timer (a timer allocated and cancelled per chunk, for nothing here).
      stream.on("data", (chunk: Buffer) => answer.chunk(chunk));
      stream.on("end", () => answer.end());
      stream.on("error", (cause: Error) => {
        const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || cause.message.includes("REFUSED_STREAM");
        answer.fail(
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
        if (answer.settled) return;
        // RST_STREAM(REFUSED_STREAM): the upstream guarantees it did not process the call (RFC 9113 §8.7).
        const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM;
        answer.fail(
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
    },
  );
}
