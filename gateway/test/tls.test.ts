import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens } from "./fixtures/tokens.js";

// The gateway's port with a certificate: TLS with ALPN, HTTP/2 (gRPC, Connect, REST) and HTTP/1.1
// (REST, Connect, gRPC-Web) on the same port, and HSTS. The certificate is made here with openssl.

const logger = createLogger("gateway-test", { level: "silent" });
let dir: string;
let ca: Buffer;
let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zero-gateway-tls-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  ca = readFileSync(join(dir, "cert.pem"));
  const tokens = await createTestTokens();
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
    tls: { cert: ca, key: readFileSync(join(dir, "key.pem")) },
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function http1Post(
  path: string,
  body: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${gateway.url}${path}`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        agent: new https.Agent({ ca, ALPNProtocols: ["http/1.1"] }),
      },
      (res) => {
        const alpn = (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol;
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text,
            alpn,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("TLS on the gateway's port", () => {
  it("is announced as https", () => {
    expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("serves REST over HTTP/1.1 (ALPN http/1.1) with HSTS", async () => {
    const response = await http1Post("/v1/echo", '{"message":"over tls"}');
    expect(response.alpn).toBe("http/1.1");
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ message: "over tls" });
    expect(response.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  });

  it("serves REST over HTTP/2 (ALPN h2)", async () => {
    const session = http2.connect(gateway.url, { ca });
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/v1/echo",
        "content-type": "application/json",
      });
      stream.end('{"message":"h2"}');
      const [headers, body] = await new Promise<[http2.IncomingHttpHeaders, string]>((resolve, reject) => {
        let text = "";
        let received: http2.IncomingHttpHeaders = {};
        stream.on("response", (h) => (received = h));
        stream.setEncoding("utf8");
        stream.on("data", (chunk: string) => (text += chunk));
        stream.on("end", () => resolve([received, text]));
        stream.on("error", reject);
      });
      expect(session.alpnProtocol).toBe("h2");
      expect(headers[":status"]).toBe(200);
      expect(JSON.parse(body)).toEqual({ message: "h2" });
    } finally {
      session.close();
    }
  });

  it("serves gRPC, Connect and gRPC-Web over TLS", async () => {
    const nodeOptions = { ca };
    const grpc = createClient(EchoService, createGrpcTransport({ baseUrl: gateway.url, nodeOptions }));
    expect((await grpc.echo({ message: "grpc" })).message).toBe("grpc");
    const connect = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2", nodeOptions }),
    );
    expect((await connect.echo({ message: "connect" })).message).toBe("connect");
    const grpcWeb = createClient(
      EchoService,
      createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1", nodeOptions }),
    );
    expect((await grpcWeb.echo({ message: "grpc-web" })).message).toBe("grpc-web");
  });

  it("refuses cleartext on the TLS port", async () => {
    const plain = gateway.url.replace("https://", "http://");
    await expect(fetch(`${plain}/healthz`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
  });
});
