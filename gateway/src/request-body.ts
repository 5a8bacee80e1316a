import http2 from "node:http2";
import type { GatewayRequest } from "./http-exchange.js";

/** How long an oversized body is drained (unbuffered) after the 413 before the stream is cut. */
const DISCARD_MS = 5_000;

const EMPTY = Buffer.alloc(0);

export type BodyResult = { readonly kind: "ok"; readonly bytes: Buffer } | { readonly kind: "too-large" };

/**
 * Reads a request body of at most `limit` bytes. A declared Content-Length above the limit is
 * refused before a byte is read; a chunked body is cut as soon as it passes the limit. The rest is
 * drained without buffering, so the client can read the 413 instead of seeing a reset while it is
 * still writing, but only for a few seconds: then the HTTP/2 stream is reset (NO_ERROR, RFC 9113
 * §8.1) or the HTTP/1.1 socket closed, so a client that never stops sending cannot hold them.
 */
export function readRequestBody(req: GatewayRequest, limit: number): BodyResult | Promise<BodyResult> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) {
    discardRequestBody(req);
    return { kind: "too-large" };
  }
  // An HTTP/1.1 body that came in the same packets as its headers has been parsed into the
  // request's buffer by the time a handler that awaited anything reads it: taken as it is, without
  // four listeners, a promise and the stream's ticks (a REST request's usual case). HTTP/2 requests
  // say `complete` only once read.
  if (req.httpVersionMajor === 1 && req.complete && req.readableLength <= limit) {
    const bytes = req.readableLength === 0 ? EMPTY : (req.read() as Buffer | null);
    if (bytes !== null) return { kind: "ok", bytes };
  }

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        chunks.length = 0;
        discardRequestBody(req);
        resolve({ kind: "too-large" });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ kind: "ok", bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onAborted = (): void => {
      cleanup();
      reject(new Error("the client aborted the request"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
}

/**
 * Drains what is left of a request the gateway answered without reading it all (413, or a call
 * refused before its body mattered), then cuts it if the client keeps sending.
 */
export function discardRequestBody(req: GatewayRequest): void {
  // A body piped upstream (pass-through) to a stream that has ended would stay paused by the pipe
  // whatever resume() says: the rest never read, the keep-alive connection stuck behind it.
  req.unpipe();
  req.resume();
  if (req.complete) return;
  const timer = setTimeout(() => {
    if (req.complete) return;
    if ("stream" in req) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    else req.socket.destroy();
  }, DISCARD_MS);
  timer.unref();
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
}
