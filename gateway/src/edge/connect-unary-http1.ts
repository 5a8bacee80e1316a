import http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  UnaryCallFailure,
  addConnectUnaryHeaders,
  plainHeaders,
  settleUnaryExchange,
  type UnaryExchange,
  type UnaryResult,
} from "./unary-exchange.js";

// The low-load lane of an upstream instance: a few HTTP/1.1 keep-alive connections for Connect
// unary calls, used while the instance's HTTP/2 session has carried no unary call for 20 ms
// (balanced-transport.ts decides); once calls overflow onto HTTP/2, new ones join it until it has
// been quiet that long. Why both (bench/gateway/RESULTS.md):
// - one call at a time, an HTTP/1.1 exchange costs the gateway less CPU and less latency than a
//   stream on Node's HTTP/2 session: the gateway-added p50 at half load fell from ~0.43 to ~0.30 ms;
// - under load, one HTTP/2 session hands the service several requests per socket read, which
//   costs it less per call than one request per connection and wake-up. A lane used whenever it
//   had a free connection cut saturation throughput by ~25 %; one used whenever the session was
//   empty at that instant still cost ~5 % (it empties between bursts); with the quiet period the
//   lane is on par with HTTP/2 only at saturation.
// Services serve both on one port (the kit's listener sniffs the protocol).

export interface Http1Lane {
  /**
   * Sends the call on a free keep-alive connection, or returns undefined at once when
   * `maxInFlight` calls already use the lane (the caller then uses the HTTP/2 session).
   */
  trySend(call: UnaryExchange): Promise<UnaryResult> | undefined;
  /** Closes the idle connections and refuses new calls. */
  close(): void;
}

export function createHttp1Lane(baseUrl: string, opts: { maxInFlight: number }): Http1Lane | undefined {
  const url = new URL(baseUrl);
  // TLS upstreams keep to HTTP/2 (ALPN); the lane is for the cleartext mesh.
  if (url.protocol !== "http:" || opts.maxInFlight <= 0) return undefined;
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: opts.maxInFlight,
    maxFreeSockets: opts.maxInFlight,
    // The most recently used connection first: the others age out instead of all staying warm.
    scheduling: "lifo",
    // Below the services' keep-alive timeout (Node's default 5 s), so the gateway closes an idle
    // connection before the service does and rarely writes into one being closed.
    timeout: 4_000,
  });
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || 80);
  let inFlight = 0;
  let closed = false;
  let pausedUntil = 0;

  return {
    trySend(call) {
      if (closed || inFlight >= opts.maxInFlight || performance.now() < pausedUntil) return undefined;
      inFlight++;
      return send(agent, host, port, call, () => (pausedUntil = performance.now() + PAUSE_MS)).finally(
        () => inFlight--,
      );
    },
    close() {
      closed = true;
      agent.destroy();
    },
  };
}

/**
 * How long the lane stands aside after the instance said it is draining (`Connection: close` on
 * an answer) or a connection failed: calls meanwhile take the HTTP/2 session, whose GOAWAY and
 * REFUSED_STREAM tell exactly which calls a stopping service did not take.
 */
const PAUSE_MS = 5_000;

function send(
  agent: http.Agent,
  host: string,
  port: number,
  call: UnaryExchange,
  pause: () => void,
): Promise<UnaryResult> {
  const timeoutMs = Math.max(1, Math.floor(call.timeoutMs));
  const headers = { ...addConnectUnaryHeaders(call, timeoutMs), "content-length": call.body.byteLength };
  let req: http.ClientRequest | undefined;
  return settleUnaryExchange(
    call,
    timeoutMs,
    () => req?.destroy(),
    (answer) => {
      req = http.request({ agent, host, port, method: "POST", path: call.path, headers });
      req.on("response", (res) => {
        // The kit's listener answers this way from the moment it starts draining.
        if (res.headers.connection?.toLowerCase() === "close") pause();
        answer.head(res.statusCode ?? 0, plainHeaders(res.headers));
        res.on("data", (chunk: Buffer) => answer.chunk(chunk));
        res.on("end", () => answer.end());
        res.on("error", (cause: Error) => answer.fail(transportFailure(cause, true)));
      });
      req.on("error", (cause: NodeJS.ErrnoException) => {
        if (answer.settled) return; // our own cancel (deadline, caller gone): says nothing of the service
        pause();
        // Only a refused connection proves the call was not sent. A reset on a reused keep-alive
        // connection before any answer is ambiguous — the service may have closed it idle (then it
        // never read the call: the kit's listener destroys only connections without a request in
        // flight) or crashed while running the call — so it counts as sent, as a reset HTTP/2
        // stream does: retried only for safe methods.
        answer.fail(transportFailure(cause, cause.code !== "ECONNREFUSED"));
      });
      req.end(call.body);
    },
  );
}

function transportFailure(cause: Error, sent: boolean): UnaryCallFailure {
  return new UnaryCallFailure(
    new ConnectError(
      sent ? "the upstream connection failed during the call" : "connection to the upstream failed",
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    ),
    sent,
    true,
  );
}
