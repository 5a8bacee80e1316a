import type { IncomingHttpHeaders } from "node:http2";
import { Code } from "@connectrpc/connect";
import { codeFromString, codeToHttpStatus, endStreamFlag } from "@connectrpc/connect/protocol-connect";
import { trailerFlag } from "@connectrpc/connect/protocol-grpc-web";
import type { RpcProtocol } from "./rpc-error-response.js";

// gRPC, gRPC-Web and Connect streaming answer HTTP 200 whatever happens, and carry the call's code
// at the end: in HTTP/2 trailers (gRPC) or in the body's last envelope (gRPC-Web's trailer frame,
// Connect's end-stream message). The pass-through never decodes messages, but the metrics, the
// access log and the span need the outcome — a refused or failed gRPC call must not count as a
// success — so this reads just that: the status header of a trailer block, or the one closing
// envelope of a stream. The outcome is told as the HTTP status of its code (Connect's mapping:
// permission_denied → 403, unavailable → 503), so one `status` label reads the same whatever the
// protocol.

/** The HTTP status a finished call stands for: its error code's, or 200 when it succeeded (no code). */
export function statusOfCode(code: Code | undefined): number {
  return code === undefined ? 200 : codeToHttpStatus(code);
}

// Only the status is read, never grpc-status-details-bin: decoding details is the client's business.
const statusOfGrpcStatus = (value: string | undefined): number | undefined => {
  const code = Number(value);
  if (value === undefined || !Number.isInteger(code) || code < 0 || code > Number(Code.Unauthenticated))
    return undefined;
  return code === 0 ? 200 : codeToHttpStatus(code);
};

/** gRPC: the outcome in HTTP/2 trailers, or in a trailers-only response's headers; undefined if none. */
export function grpcTrailerStatus(headers: IncomingHttpHeaders): number | undefined {
  const status = headers["grpc-status"];
  return statusOfGrpcStatus(Array.isArray(status) ? status[0] : status);
}

/** Reads a streamed gRPC-Web or Connect-streaming response body for the call's outcome. */
export interface EnvelopeOutcome {
  /** Every chunk of the body as the service sent it (binary: before any base64). */
  push(chunk: Uint8Array): void;
  /** The outcome once the closing envelope was read; undefined before, or if it was unreadable. */
  status(): number | undefined;
}

// A closing envelope holds a few headers or a small JSON error; one larger than this is not read
// (its outcome stays unknown) rather than buffered, nor is a compressed one (never decompressed here).
const MAX_CLOSING_ENVELOPE_BYTES = 64 * 1024;
const COMPRESSED_FLAG = 0x01;

export function createEnvelopeOutcome(protocol: "grpc-web" | "connect-stream"): EnvelopeOutcome {
  const closingFlag = protocol === "grpc-web" ? trailerFlag : endStreamFlag;
  const header = new Uint8Array(5);
  let headerBytes = 0;
  let remaining = 0; // payload bytes of the current envelope still to come
  let closing: Uint8Array | undefined; // the closing envelope's payload, while it is read
  let closingAt = 0;
  let outcome: number | undefined;

  const decide = (payload: Uint8Array): number | undefined => {
    const text = new TextDecoder().decode(payload);
    if (protocol === "grpc-web") return statusOfGrpcStatus(/(?:^|\n)grpc-status:\s*(\d+)/i.exec(text)?.[1]);
    try {
      const code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
      if (code === undefined) return 200;
      const known = typeof code === "string" ? codeFromString(code) : undefined;
      return known === undefined ? undefined : statusOfCode(known);
    } catch {
      return undefined; // not ours to judge: the client reads the same bytes and will complain
    }
  };

  return {
    push(chunk) {
      let at = 0;
      while (at < chunk.length) {
        if (remaining === 0 && closing === undefined) {
          const take = Math.min(5 - headerBytes, chunk.length - at);
          header.set(chunk.subarray(at, at + take), headerBytes);
          headerBytes += take;
          at += take;
          if (headerBytes < 5) return;
          headerBytes = 0;
          const flags = header[0] as number;
          remaining = new DataView(header.buffer).getUint32(1);
          const readable =
            (flags & closingFlag) !== 0 &&
            (flags & COMPRESSED_FLAG) === 0 &&
            remaining <= MAX_CLOSING_ENVELOPE_BYTES;
          if (readable && remaining === 0) outcome = decide(new Uint8Array(0));
          else if (readable) {
            closing = new Uint8Array(remaining);
            closingAt = 0;
          }
          continue;
        }
        const take = Math.min(remaining, chunk.length - at);
        if (closing !== undefined) closing.set(chunk.subarray(at, at + take), closingAt);
        closingAt += take;
        remaining -= take;
        at += take;
        if (remaining === 0 && closing !== undefined) {
          outcome = decide(closing);
          closing = undefined;
        }
      }
    },
    status: () => outcome,
  };
}

/** What reads the outcome of a pass-through call in `protocol`, if its HTTP status does not tell it. */
export function envelopeOutcomeFor(protocol: RpcProtocol): EnvelopeOutcome | undefined {
  if (protocol === "grpc-web" || protocol === "grpc-web-text") return createEnvelopeOutcome("grpc-web");
  if (protocol === "connect-stream") return createEnvelopeOutcome("connect-stream");
  return undefined;
}
