import type { Socket } from "node:net";

/** What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export type WireProtocol = "http1" | "http2";

/**
 * Reads a new connection's first bytes until they either match the HTTP/2 preface or cannot
 * (an HTTP/1.1 request line never starts with "PRI * HTTP/2.0"), then puts the bytes back and
 * calls `decide`, so the chosen server parses the stream from its first byte. The preface may
 * arrive in pieces; a connection that closes or errors first is simply dropped, and one that stays
 * silent for `timeoutMs` is destroyed (it would otherwise hold a socket forever).
 */
export function sniffProtocol(
  socket: Socket,
  timeoutMs: number,
  decide: (protocol: WireProtocol) => void,
): void {
  const chunks: Buffer[] = [];
  let length = 0;

  const cleanup = (): void => {
    clearTimeout(timer);
    socket.removeListener("readable", onReadable);
    socket.removeListener("error", onError);
    socket.removeListener("close", cleanup);
  };
  // Without a listener an early reset (ECONNRESET) would crash the process.
  const onError = (): void => {
    cleanup();
    socket.destroy();
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) {
      chunks.push(chunk);
      length += chunk.length;
    }
    if (length === 0) return;
    const head = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
    const compared = Math.min(length, HTTP2_PREFACE.length);
    const matches = head.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared));
    if (matches && length < HTTP2_PREFACE.length) {
      chunks.length = 0;
      chunks.push(head);
      return;
    }
    cleanup();
    socket.unshift(head);
    decide(matches ? "http2" : "http1");
  };
  const timer = setTimeout(() => {
    cleanup();
    socket.destroy();
  }, timeoutMs);

  socket.on("readable", onReadable);
  socket.on("error", onError);
  socket.on("close", cleanup);
}
