import { describe, expect, it } from "vitest";
import { createEnvelopeOutcome, grpcTrailerStatus } from "./rpc-outcome.js";

const envelope = (flags: number, payload: string): Uint8Array => {
  const bytes = new TextEncoder().encode(payload);
  const frame = new Uint8Array(5 + bytes.length);
  frame[0] = flags;
  new DataView(frame.buffer).setUint32(1, bytes.length);
  frame.set(bytes, 5);
  return frame;
};
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
};
/** Feeds `body` in pieces of `size` bytes, as a socket might deliver it. */
const outcomeOf = (protocol: "grpc-web" | "connect-stream", body: Uint8Array, size: number) => {
  const reader = createEnvelopeOutcome(protocol);
  for (let at = 0; at < body.length; at += size) reader.push(body.subarray(at, at + size));
  return reader.status();
};

describe("the outcome of a call whose HTTP status is 200 whatever happens", () => {
  it("gRPC: reads grpc-status from trailers as the HTTP status of its code", () => {
    expect(grpcTrailerStatus({ "grpc-status": "0" })).toBe(200);
    expect(grpcTrailerStatus({ "grpc-status": "7", "grpc-message": "no" })).toBe(403);
    expect(grpcTrailerStatus({ "grpc-status": "14" })).toBe(503);
    expect(grpcTrailerStatus({ "content-type": "application/grpc" })).toBeUndefined();
  });

  const message = envelope(0, "a message of some length");
  it.each([1, 2, 5, 7, 1000])(
    "gRPC-Web: finds the trailer frame behind messages, %i bytes at a time",
    (size) => {
      const denied = concat(message, message, envelope(0x80, "grpc-status: 5\r\ngrpc-message: gone\r\n"));
      expect(outcomeOf("grpc-web", denied, size)).toBe(404);
      expect(outcomeOf("grpc-web", concat(message, envelope(0x80, "grpc-status: 0\r\n")), size)).toBe(200);
    },
  );

  it.each([1, 3, 1000])(
    "Connect streaming: reads the end-stream message's error, %i bytes at a time",
    (size) => {
      const failed = concat(message, envelope(0x02, '{"error":{"code":"unavailable","message":"down"}}'));
      expect(outcomeOf("connect-stream", failed, size)).toBe(503);
      expect(outcomeOf("connect-stream", concat(message, envelope(0x02, "{}")), size)).toBe(200);
    },
  );

  it("leaves the outcome unknown when the stream stops early, or the closing envelope is compressed or unreadable", () => {
    expect(outcomeOf("grpc-web", message, 4)).toBeUndefined();
    expect(outcomeOf("connect-stream", envelope(0x03, "compressed bytes"), 100)).toBeUndefined();
    expect(outcomeOf("connect-stream", envelope(0x02, "not json"), 100)).toBeUndefined();
  });
});
