import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../src/server.js";
import type { Server } from "../src/server.js";
import { echoRoutes } from "./fixtures/echo-service.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer } from "./fixtures/tokens.js";

// A request message that is not a valid EchoRequest (field 1, wire type 7: no such wire type).
const garbage = Uint8Array.from([0x0f, 0xff, 0xff]);
const valid = toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "hello" }));

let server: Server;
const logs = captureLogs();

beforeAll(async () => {
  const issuer = await createTestIssuer();
  server = await startServer({
    name: "echo",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [EchoService],
    routes: echoRoutes,
    verifier: issuer.verifier,
    maxBodyBytes: 64 * 1024,
  });
});

afterAll(async () => {
  await server.close(2000);
});

function envelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = flags;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/2 request with the body written in the given chunks. */
async function h2(
  path: string,
  headers: http2.OutgoingHttpHeaders,
  chunks: Uint8Array[],
): Promise<RawAnswer> {
  const session = http2.connect(server.url);
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, ...headers });
      const answer: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
      const parts: Buffer[] = [];
      stream.on("response", (h) => {
        answer.status = Number(h[":status"]);
        answer.headers = h;
      });
      stream.on("trailers", (t: http2.IncomingHttpHeaders) => {
        answer.trailers = t;
      });
      stream.on("data", (chunk: Buffer) => parts.push(chunk));
      stream.on("end", () => resolve({ ...answer, body: Buffer.concat(parts) }));
      stream.on("error", reject);
      for (const chunk of chunks) stream.write(chunk);
      stream.end();
    });
  } finally {
    session.close();
  }
}

const echoPath = "/zero.testing.v1.EchoService/Echo";

describe("undecodable request messages are INVALID_ARGUMENT in every protocol", () => {
  it("gRPC: grpc-status 3, also when the envelope arrives in pieces", async () => {
    const whole = await h2(echoPath, { "content-type": "application/grpc", te: "trailers" }, [
      envelope(garbage),
    ]);
    const status = whole.headers["grpc-status"] ?? whole.trailers["grpc-status"];
    expect(status).toBe("3");
    expect(
      decodeURIComponent(String(whole.headers["grpc-message"] ?? whole.trailers["grpc-message"])),
    ).toMatch(/cannot decode the request message zero\.testing\.v1\.EchoRequest/);
    const bytes = envelope(garbage);
    const split = await h2(echoPath, { "content-type": "application/grpc+proto", te: "trailers" }, [
      bytes.subarray(0, 3),
      bytes.subarray(3, 6),
      bytes.subarray(6),
    ]);
    expect(split.headers["grpc-status"] ?? split.trailers["grpc-status"]).toBe("3");
  });

  it("gRPC: a valid message still works", async () => {
    const ok = await h2(echoPath, { "content-type": "application/grpc", te: "trailers" }, [envelope(valid)]);
    expect(ok.trailers["grpc-status"]).toBe("0");
  });

  it("gRPC-Web: the trailer frame says grpc-status 3", async () => {
    const answer = await h2(echoPath, { "content-type": "application/grpc-web+proto" }, [envelope(garbage)]);
    expect(answer.status).toBe(200);
    expect(answer.body.toString("latin1")).toMatch(/grpc-status: ?3/);
  });

  it("Connect unary binary: HTTP 400 invalid_argument", async () => {
    const answer = await h2(
      echoPath,
      { "content-type": "application/proto", "connect-protocol-version": "1" },
      [garbage],
    );
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "invalid_argument" });
  });

  it("Connect streaming binary: the end-stream message says invalid_argument", async () => {
    const answer = await h2(
      "/zero.testing.v1.EchoService/EchoStream",
      { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
      [envelope(garbage)],
    );
    expect(answer.status).toBe(200);
    expect(answer.body.subarray(5).toString()).toMatch(/"code":"invalid_argument"/);
  });

  it("leaves an oversized message to connect-es's size limit", async () => {
    const big = envelope(new Uint8Array(70 * 1024));
    const answer = await h2(echoPath, { "content-type": "application/grpc", te: "trailers" }, [big]);
    // resource_exhausted (8): the size limit, not a decode failure.
    expect(answer.headers["grpc-status"] ?? answer.trailers["grpc-status"]).toBe("8");
  });
});
