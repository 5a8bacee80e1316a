import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { ERROR_DOMAIN } from "./errors.js";
import { endStreamWithLastDataFrame } from "./http2-end-stream.js";
import type { Logger } from "./log.js";
import { sniffProtocol } from "./protocol-sniffer.js";

export type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface ListenerOptions {
  /** Interface to bind; default all IPv4 interfaces. */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  logger: Logger;
  /** For log lines. */
  name: string;
  onRequest: (req: AnyRequest, res: AnyResponse) => void;
  /**
   * Serve TLS instead of cleartext: ALPN picks HTTP/2 (`h2`) or HTTP/1.1 per connection, so gRPC,
   * Connect, gRPC-Web and REST all share the one port as before. PEM certificate (chain) and key.
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * HTTP/1.1: how long a client may take to send a request's headers, and the whole request, before
   * it is answered 408 and disconnected (slow-client attacks hold sockets otherwise); defaults
   * HEADERS_TIMEOUT_MS and REQUEST_TIMEOUT_MS.
   */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface Listener {
  port: number;
  /** `http://host:port` (`https://` with TLS), with a loopback host when bound to all interfaces. */
  url: string;
  /** True when the port serves TLS. */
  readonly tls: boolean;
  /** True from the moment `drain` is called. */
  readonly draining: boolean;
  /**
   * Stops accepting, sends GOAWAY to HTTP/2 clients, closes HTTP/1.1 connections as their last
   * response ends, and waits for in-flight requests. Whatever is still open after `deadlineMs` is
   * destroyed (`onDeadline` runs first, so handlers can be cancelled). Resolves true when
   * everything finished in time.
   */
  drain(deadlineMs: number, onDeadline?: () => void): Promise<boolean>;
}

// A connection that sends nothing at all for this long is not a client worth a socket.
const SNIFF_TIMEOUT_MS = 10_000;
const DRAIN_POLL_MS = 20;
const SILENT_CONNECTION_GRACE_MS = 500;
const QUIET_MS = 200;
const ACCEPT_GRACE_MS = 250;
// Node's defaults are 60 s and 300 s, checked every 30 s: a client trickling bytes held a socket
// for minutes. Ten seconds covers a slow mobile link's headers, a minute a 1 MiB body at 20 KB/s.
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 60_000;

/**
 * One TCP port for HTTP/1.1 and cleartext HTTP/2 (prior knowledge): the first bytes of each
 * connection pick the server. Used by every service (through the kit server) and by the gateway.
 * With `tls`, the port speaks TLS and ALPN picks the server instead (`h2`, else HTTP/1.1).
 *
 * HTTP/1.1 requests in flight are counted per socket here rather than left to Node's
 * `closeIdleConnections()`: Node treats a connection as idle as soon as the request has been
 * fully *received*, so a drain would cut requests whose responses are still being computed (seen
 * as ECONNRESET under SIGTERM during a burst).
 */
export async function startListener(opts: ListenerOptions): Promise<Listener> {
  const { logger } = opts;
  let draining = false;
  const sockets = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const inFlight = new Map<net.Socket, number>();
  // When each HTTP/1.1 connection last finished a response (see drain).
  const lastAnswered = new WeakMap<net.Socket, number>();
  // HTTP/2 connections drain through their session (GOAWAY), not by socket.
  const http2Sockets = new WeakSet<net.Socket>();

  const onHttp1Request = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    // While draining, HTTP/1.1 connections close after their current response.
    if (draining) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      if (left > 0) {
        inFlight.set(socket, left);
        return;
      }
      inFlight.delete(socket);
      lastAnswered.set(socket, Date.now());
      if (draining) socket.end();
    });
    opts.onRequest(req, res);
  };

  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const requestTimeout = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const h1 = http.createServer(
    {
      headersTimeout,
      requestTimeout: Math.max(requestTimeout, headersTimeout),
      // How often Node looks for connections past those limits (default 30 s).
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
    },
    onHttp1Request,
  );
  // Requests Node's parser refuses before any handler runs (an unknown method such as `FOO`, a
  // malformed request line or header) still get an answer in the error shape every Zero endpoint
  // uses, not Node's bare `400 Bad Request`.
  h1.on("clientError", (error: NodeJS.ErrnoException, socket: net.Socket) => {
    // A response already begun (a request timed out while its handler streamed an answer) cannot
    // be followed by another: only cut the connection. (`_httpMessage` is the response Node has
    // bound to the socket; its own default handler checks it the same way.)
    const begun = (socket as net.Socket & { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent;
    if (!socket.writable || error.code === "ECONNRESET" || begun === true) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] =
      error.code === "HPE_HEADER_OVERFLOW" && requestLineTooLong(error)
        ? [
            414,
            "URI Too Long",
            "INVALID_ARGUMENT",
            "the URL is too long: send large inputs in a request body",
          ]
        : error.code === "HPE_HEADER_OVERFLOW"
          ? [
              431,
              "Request Header Fields Too Large",
              "RESOURCE_EXHAUSTED",
              "the request headers are too large",
            ]
          : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
            ? [
                408,
                "Request Timeout",
                "DEADLINE_EXCEEDED",
                `the request did not arrive in time: headers are awaited ${headersTimeout / 1000} s, a whole request ${Math.max(requestTimeout, headersTimeout) / 1000} s`,
              ]
            : [
                400,
                "Bad Request",
                "INVALID_ARGUMENT",
                "the request is not valid HTTP/1.1 (unknown method, or a malformed request line or header)",
              ];
    const details = [
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: code, domain: ERROR_DOMAIN },
    ];
    const body = JSON.stringify({ error: { code: status, status: code, message, details } });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  const h2 = http2.createServer((req, res) => {
    endStreamWithLastDataFrame(req, res);
    opts.onRequest(req, res);
  });
  // Streams open per HTTP/2 session, and when the last one ended: a session is told to go away
  // only once it has been quiet for a moment (see drain).
  const activity = new Map<http2.ServerHttp2Session, { open: number; lastEnd: number }>();
  h2.on("session", (session) => {
    sessions.add(session);
    const state = { open: 0, lastEnd: Date.now() };
    activity.set(session, state);
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      state.open++;
      stream.once("close", () => {
        state.open--;
        state.lastEnd = Date.now();
      });
    });
    session.once("close", () => {
      sessions.delete(session);
      activity.delete(session);
    });
    session.on("error", (error) => logger.debug({ err: error }, "http/2 session error"));
  });

  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      sniffing.delete(socket);
      inFlight.delete(socket);
    });
  };
  const hand = (socket: net.Socket, protocol: "http1" | "http2"): void => {
    if (protocol === "http2") http2Sockets.add(socket);
    (protocol === "http2" ? h2 : h1).emit("connection", socket);
  };

  const tcp = opts.tls === undefined ? cleartextServer() : tlsServer(opts.tls);

  function cleartextServer(): net.Server {
    return net.createServer({ noDelay: true }, (socket) => {
      track(socket);
      sniffing.add(socket);
      sniffProtocol(socket, SNIFF_TIMEOUT_MS, (protocol) => {
        sniffing.delete(socket);
        hand(socket, protocol);
      });
    });
  }

  // TLS connections are tracked by their raw socket until the handshake completes (as "sniffing":
  // nothing sent yet), then by the TLS socket, which is what requests and sessions refer to.
  function tlsServer(credentials: NonNullable<ListenerOptions["tls"]>): tls.Server {
    const handshaking = new Map<string, net.Socket>();
    const peer = (socket: net.Socket): string => `${socket.remoteAddress}|${socket.remotePort}`;
    const server = tls.createServer({
      cert: credentials.cert,
      key: credentials.key,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: SNIFF_TIMEOUT_MS,
      noDelay: true,
    });
    server.on("connection", (raw: net.Socket) => {
      const key = peer(raw);
      handshaking.set(key, raw);
      track(raw);
      sniffing.add(raw);
      raw.once("close", () => {
        if (handshaking.get(key) === raw) handshaking.delete(key);
      });
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const key = peer(socket);
      const raw = handshaking.get(key);
      if (raw !== undefined) {
        handshaking.delete(key);
        sockets.delete(raw);
        sniffing.delete(raw);
      }
      track(socket);
      // No ALPN (or http/1.1): HTTP/1.1, the TLS default.
      hand(socket, socket.alpnProtocol === "h2" ? "http2" : "http1");
    });
    server.on("tlsClientError", (error) => logger.debug({ err: error }, "tls handshake failed"));
    return server;
  }

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port, opts.host ?? "0.0.0.0", () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  tcp.on("error", (error) => logger.error({ err: error }, "listener error"));
  // The HTTP/1.1 server never listens itself (it gets sockets from the sniffer); this starts its
  // header and request timeouts.
  h1.emit("listening");

  const address = tcp.address() as AddressInfo;
  const urlHost = ["0.0.0.0", "::", ""].includes(address.address)
    ? "127.0.0.1"
    : address.address.includes(":")
      ? `[${address.address}]`
      : address.address;

  const isIdleHttp1 = (socket: net.Socket): boolean =>
    !sniffing.has(socket) && !inFlight.has(socket) && !http2Sockets.has(socket);

  const drain = async (deadlineMs: number, onDeadline?: () => void): Promise<boolean> => {
    draining = true;
    const startedAt = Date.now();
    const deadline = startedAt + deadlineMs;
    // Connections the kernel has already accepted but Node has not yet picked up would be reset
    // the moment the listening socket closes — with their requests in them. Keep accepting for a
    // moment (readiness already says 503, so balancers stop sending), then close.
    await new Promise((resolve) => setTimeout(resolve, Math.min(ACCEPT_GRACE_MS, deadlineMs / 4)));
    const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    while (sockets.size > 0 && Date.now() < deadline) {
      const now = Date.now();
      // An idle keep-alive connection closes once it has been quiet for a moment, like an HTTP/2
      // session below: a caller still sending has a connection in use (answered with `Connection:
      // close` from now on, which tells it we are stopping) rather than one we are closing under
      // its next request. Destroyed, not ended: a request racing into it anyway is then never
      // read (its caller sees a reset) instead of being run with nowhere to send its answer.
      for (const socket of sockets) {
        if (isIdleHttp1(socket) && now - (lastAnswered.get(socket) ?? 0) >= QUIET_MS) socket.destroy();
      }
      // A connection whose first bytes are still on their way may carry a request sent before we
      // were told to stop; one that stays silent past the grace has none.
      if (now - startedAt > SILENT_CONNECTION_GRACE_MS) for (const socket of sniffing) socket.destroy();
      // GOAWAY only after a quiet moment: a caller that is itself draining (the gateway, during a
      // rolling stop of everything) may still be forwarding requests it accepted before its own
      // signal. Streams refused after GOAWAY are retried by well-behaved clients, but unanswered
      // work is better than a retry.
      for (const [session, state] of activity) {
        if (!session.closed && state.open === 0 && now - state.lastEnd >= QUIET_MS) session.close();
      }
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    const clean = sockets.size === 0;
    if (!clean) {
      logger.warn(
        { server: opts.name, connections: sockets.size },
        "drain deadline passed: cutting what is still open",
      );
      onDeadline?.();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    }
    await closed;
    h1.close();
    return clean;
  };

  return {
    port: address.port,
    url: `${opts.tls === undefined ? "http" : "https"}://${urlHost}:${address.port}`,
    tls: opts.tls !== undefined,
    get draining() {
      return draining;
    },
    drain,
  };
}

/**
 * Node's parser has one size limit for the request line and the headers together (16 KiB). The
 * bytes it choked on say which was too long: no line end within them, or a first line over half
 * the limit, is the URL (414); otherwise the headers (431).
 */
function requestLineTooLong(error: Error): boolean {
  const raw = (error as Error & { rawPacket?: Buffer }).rawPacket;
  if (raw === undefined || !/^[A-Z]+ /.test(raw.subarray(0, 16).toString("latin1"))) return false;
  const lineEnd = raw.indexOf("\r\n");
  return lineEnd < 0 || lineEnd > 8 * 1024;
}
