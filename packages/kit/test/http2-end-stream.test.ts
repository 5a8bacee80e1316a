import net from "node:net";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Server } from "../src/server.js";
import { startEchoTestServer } from "./fixtures/echo-server.js";

// Over HTTP/2, an answer that has no HTTP trailers ends with its last DATA frame (END_STREAM set
// on it) instead of a separate, empty DATA frame sent after it — one socket write per answer, not
// two (src/http2-end-stream.ts). gRPC keeps its trailers. The frames are read off the wire, through
// a proxy that records what the server sends.

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FLAG_END_STREAM = 0x1;

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
}

/** HTTP/2 frames in what a server sent (it sends no connection preface of bytes, only frames). */
function parseFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(at, 3);
    frames.push({
      length,
      type: bytes[at + 3] as number,
      flags: bytes[at + 4] as number,
      streamId: bytes.readUInt32BE(at + 5) & 0x7fffffff,
    });
    at += 9 + length;
  }
  return frames;
}

let server: Server;
const proxies: net.Server[] = [];

beforeAll(async () => {
  server = await startEchoTestServer();
});

afterAll(async () => {
  for (const proxy of proxies) proxy.close();
  await server.close(2000);
});

/** A TCP proxy to the server that keeps every byte the server sent back. */
async function recordingProxy(): Promise<{ url: string; received: () => Buffer }> {
  const chunks: Buffer[] = [];
  const proxy = net.createServer((client) => {
    const upstream = net.connect(server.port, "127.0.0.1");
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      client.write(chunk);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", close).on("error", close);
    upstream.on("close", close).on("error", close);
  });
  proxies.push(proxy);
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, received: () => Buffer.concat(chunks) };
}

/** The frames the server sent on the first stream of a fresh connection, for one echo call. */
async function framesOfOneCall(transportFor: (baseUrl: string) => Transport): Promise<Frame[]> {
  const proxy = await recordingProxy();
  const client = createClient(EchoService, transportFor(proxy.url));
  expect((await client.echo({ message: "one write" })).message).toBe("one write");
  return parseFrames(proxy.received()).filter((frame) => frame.streamId === 1);
}

describe("HTTP/2 answers", () => {
  it.each([
    ["Connect", (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2" })],
    [
      "Connect (binary)",
      (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
    ],
  ])("%s: the message's DATA frame ends the stream; no empty frame follows", async (_name, transportFor) => {
    const frames = await framesOfOneCall(transportFor);
    expect(frames.map((frame) => frame.type)).toEqual([FRAME_HEADERS, FRAME_DATA]);
    const data = frames[1] as Frame;
    expect(data.flags & FLAG_END_STREAM).toBe(FLAG_END_STREAM);
    expect(data.length).toBeGreaterThan(0);
  });

  it("gRPC-Web: trailers in the body, the stream ended by a DATA frame (no HTTP trailers)", async () => {
    // connect-node writes the trailers envelope in a later tick than the message, so Node still
    // ends this stream with an empty frame; what matters here is that the answer is whole.
    const frames = await framesOfOneCall((baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }));
    const [head, ...body] = frames;
    expect(head?.type).toBe(FRAME_HEADERS);
    expect(body.map((frame) => frame.type)).toEqual(body.map(() => FRAME_DATA));
    expect((body.at(-1) as Frame).flags & FLAG_END_STREAM).toBe(FLAG_END_STREAM);
  });

  it("gRPC: still ends with its trailers (grpc-status), after the message", async () => {
    const frames = await framesOfOneCall((baseUrl) => createGrpcTransport({ baseUrl }));
    expect(frames.map((frame) => frame.type)).toEqual([FRAME_HEADERS, FRAME_DATA, FRAME_HEADERS]);
    expect((frames[1] as Frame).flags & FLAG_END_STREAM).toBe(0);
    expect((frames[2] as Frame).flags & FLAG_END_STREAM).toBe(FLAG_END_STREAM);
  });
});
