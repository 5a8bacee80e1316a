import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";

// connect-es reports a binary request message it cannot decode as INTERNAL ("parse binary: …",
// HTTP 500 for Connect), before any interceptor runs, so the kit's error mapping never sees it.
// A malformed message is the caller's mistake: INVALID_ARGUMENT. Each handler's request body is
// therefore checked on its way in: every complete message (an enveloped one for gRPC, gRPC-Web and
// Connect streaming, the whole body for Connect unary) is decoded once, and an undecodable one
// ends the body with INVALID_ARGUMENT, which connect-es then sends in the caller's protocol. The
// bytes are passed on unchanged; the cost is one extra decode of each request message.
//
// Compressed messages are passed on unchecked (connect-es decompresses them itself), as are
// JSON requests (connect-es already answers INVALID_ARGUMENT for those).

const FLAG_COMPRESSED = 0b1;

/** Replaces each handler of the list (in place: connect-node reads it after `routes`) by a checking one. */
export function rejectUndecodableMessages(handlers: UniversalHandler[], maxMessageBytes: number): void {
  handlers.forEach((handler, i) => {
    handlers[i] = withDecodeCheck(handler, maxMessageBytes);
  });
}

function withDecodeCheck(handler: UniversalHandler, maxMessageBytes: number): UniversalHandler {
  const input = handler.method.input;
  const checked = (req: UniversalServerRequest) => {
    const body = req.body;
    if (typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return handler(req);
    const framing = framingOf(req.header);
    if (framing === undefined) return handler(req);
    const check =
      framing === "enveloped"
        ? checkEnvelopes(body, input, maxMessageBytes)
        : checkWholeBody(body, input, maxMessageBytes);
    return handler({ ...req, body: check });
  };
  return Object.assign(checked, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

/** How binary messages travel in this request, or undefined when there is nothing to check. */
function framingOf(header: Headers): "enveloped" | "whole" | undefined {
  const contentType = (header.get("content-type") ?? "").toLowerCase().split(";")[0]!.trim();
  switch (contentType) {
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
    case "application/connect+proto":
      return "enveloped";
    case "application/proto":
      // A compressed unary body is decompressed by connect-es: leave it to it.
      return header.get("content-encoding") === null ? "whole" : undefined;
    default:
      return undefined;
  }
}

function invalid(input: DescMessage, error: unknown): ConnectError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ConnectError(
    `cannot decode the request message ${input.typeName}: ${reason}`,
    Code.InvalidArgument,
  );
}

function decodeOrThrow(input: DescMessage, bytes: Uint8Array): void {
  try {
    fromBinary(input, bytes);
  } catch (error) {
    throw invalid(input, error);
  }
}

/** Envelopes: 1 flag byte, 4 bytes big-endian length, the message. */
async function* checkEnvelopes(
  body: AsyncIterable<Uint8Array>,
  input: DescMessage,
  maxMessageBytes: number,
): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array = new Uint8Array(0);
  let giveUp = false;
  for await (const chunk of body) {
    if (!giveUp) {
      pending = pending.length === 0 ? chunk : concat(pending, chunk);
      while (pending.length >= 5) {
        const flags = pending[0]!;
        const length = new DataView(pending.buffer, pending.byteOffset, 5).getUint32(1);
        // connect-es refuses an oversized message itself (resource_exhausted): do not buffer it.
        if (length > maxMessageBytes) {
          giveUp = true;
          break;
        }
        if (pending.length < 5 + length) break;
        if ((flags & FLAG_COMPRESSED) === 0) decodeOrThrow(input, pending.subarray(5, 5 + length));
        pending = pending.subarray(5 + length);
      }
    }
    yield chunk;
  }
}

async function* checkWholeBody(
  body: AsyncIterable<Uint8Array>,
  input: DescMessage,
  maxMessageBytes: number,
): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let oversized = false;
  for await (const chunk of body) {
    // Too large: connect-es answers that itself; pass the rest on unchecked and unbuffered.
    if (oversized || size + chunk.length > maxMessageBytes) {
      oversized = true;
      yield* chunks.splice(0);
      yield chunk;
      continue;
    }
    size += chunk.length;
    chunks.push(chunk);
  }
  if (oversized) return;
  decodeOrThrow(input, concat(...chunks));
  yield* chunks;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  if (parts.length === 0) return new Uint8Array(0);
  const size = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
