import http from "node:http";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import { EchoRequestSchema, EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { createHttp1Lane } from "../src/edge/connect-unary-http1.js";
import { UnaryCallFailure, type UnaryExchange } from "../src/edge/unary-exchange.js";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startProbeEchoServer, type ProbeEchoServer } from "./fixtures/probe-echo-server.js";
import { createTestTokens, type TestTokens } from "./fixtures/tokens.js";

// The upstream HTTP/1.1 lane: unary REST calls take a few keep-alive connections while they have
// room and the HTTP/2 session beyond; failures keep the same meaning on both.

const logger = createLogger("gateway-test", { level: "silent" });
let tokens: TestTokens;
let probe: ProbeEchoServer;

beforeAll(async () => {
  tokens = await createTestTokens();
  probe = await startProbeEchoServer({ logger, verifier: tokens.verifier });
});
afterAll(async () => {
  await probe?.close();
});

const gatewayWith = (http1Connections: number, http1QuietMs?: number): Promise<Gateway> =>
  startGateway({
    services: [EchoService],
    upstreamUrls: { testing: probe.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
    resilience: {
      healthCheckIntervalMs: 0,
      http1Connections,
      ...(http1QuietMs === undefined ? {} : { http1QuietMs }),
    },
  });

const post = (gateway: Gateway, message: string) =>
  fetch(`${gateway.url}/v1/echo`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message }),
  });

/** How many of the calls the probe saw since `from` came over HTTP/1.1 keep-alive. */
const overHttp1 = (from: number) =>
  probe.calls.slice(from).filter((c) => c.headers.connection === "keep-alive");

describe("through the gateway", () => {
  it("sends calls one at a time over HTTP/1.1 keep-alive, and those beyond the lane over HTTP/2", async () => {
    const gateway = await gatewayWith(2);
    try {
      let from = probe.calls.length;
      for (const message of ["a", "b", "c"]) {
        const res = await post(gateway, message);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ message });
      }
      expect(overHttp1(from)).toHaveLength(3);

      from = probe.calls.length;
      const answers = await Promise.all(Array.from({ length: 6 }, () => post(gateway, "sleep:300")));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(probe.calls.length - from).toBe(6);
      expect(overHttp1(from)).toHaveLength(2);
    } finally {
      await gateway.close(1000);
    }
  });

  it("keeps new calls on HTTP/2 while it carries calls and until it has been quiet for a while, then returns to HTTP/1.1", async () => {
    // A quiet period far longer than the gaps between this test's calls, however slow the machine.
    const gateway = await gatewayWith(1, 700);
    try {
      const from = probe.calls.length;
      const onLane = post(gateway, "sleep:300"); // the lane's one connection
      await new Promise((resolve) => setTimeout(resolve, 50));
      const onHttp2 = post(gateway, "sleep:900"); // lane full: HTTP/2
      expect((await onLane).status).toBe(200);
      // The lane is free again, but HTTP/2 still carries a call: this one joins it.
      expect((await post(gateway, "while-busy")).status).toBe(200);
      expect((await onHttp2).status).toBe(200);
      // HTTP/2 has just emptied: not quiet yet (a saturated gateway empties it for instants too).
      expect((await post(gateway, "just-after")).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 800)); // > the quiet period
      expect((await post(gateway, "quiet-again")).status).toBe(200);
      const seen = probe.calls.slice(from);
      expect(seen).toHaveLength(5);
      expect(seen.map((c) => c.headers.connection === "keep-alive")).toEqual([
        true,
        false,
        false,
        false,
        true,
      ]);
    } finally {
      await gateway.close(1000);
    }
  });

  it("uses only HTTP/2 when the lane is off (UPSTREAM_HTTP1_CONNECTIONS=0)", async () => {
    const gateway = await gatewayWith(0);
    try {
      const from = probe.calls.length;
      expect((await post(gateway, "x")).status).toBe(200);
      expect(probe.calls.length - from).toBe(1);
      expect(overHttp1(from)).toHaveLength(0);
    } finally {
      await gateway.close(1000);
    }
  });

  it("answers a service's error identically over either protocol", async () => {
    const [lane, h2only] = await Promise.all([gatewayWith(4), gatewayWith(0)]);
    try {
      probe.failNext(1);
      const viaLane = await post(lane, "boom");
      probe.failNext(1);
      const viaHttp2 = await post(h2only, "boom");
      expect(viaLane.status).toBe(503);
      expect(viaHttp2.status).toBe(503);
      const strip = (body: { error: Record<string, unknown> }) => ({ ...body.error, requestId: undefined });
      expect(strip((await viaLane.json()) as never)).toEqual(strip((await viaHttp2.json()) as never));
    } finally {
      await Promise.all([lane.close(1000), h2only.close(1000)]);
    }
  });
});

describe("the lane itself", () => {
  const echoCall = (overrides: Partial<UnaryExchange> = {}): UnaryExchange => ({
    path: "/zero.testing.v1.EchoService/Echo",
    headers: {},
    body: toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "hi" })),
    timeoutMs: 5_000,
    signal: undefined,
    maxResponseBytes: 1 << 20,
    ...overrides,
  });

  /** A bare HTTP/1.1 peer behaving as a service should not (or as one that is draining). */
  async function peer(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }

  async function failureOf(promise: Promise<unknown> | undefined): Promise<UnaryCallFailure> {
    expect(promise).toBeDefined();
    const error = await (promise as Promise<unknown>).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnaryCallFailure);
    return error as UnaryCallFailure;
  }

  it("refuses to take more calls than its connections, and none for a TLS upstream", async () => {
    const lane = createHttp1Lane(probe.url, { maxInFlight: 1 });
    expect(createHttp1Lane(probe.url.replace("http:", "https:"), { maxInFlight: 4 })).toBeUndefined();
    expect(createHttp1Lane(probe.url, { maxInFlight: 0 })).toBeUndefined();
    try {
      const first = lane?.trySend(
        echoCall({ body: toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "sleep:100" })) }),
      );
      expect(lane?.trySend(echoCall())).toBeUndefined();
      expect((await first)?.headers["content-type"]).toBe("application/proto");
      const again = lane?.trySend(echoCall());
      expect(again).toBeDefined();
      expect((await again)?.body.length).toBeGreaterThan(0);
    } finally {
      lane?.close();
    }
  });

  it("cancels when the caller goes away, before or during the call, and stays in use", async () => {
    const lane = createHttp1Lane(probe.url, { maxInFlight: 1 });
    try {
      const gone = new AbortController();
      gone.abort();
      const early = await failureOf(lane?.trySend(echoCall({ signal: gone.signal })));
      expect(early.error.code).toBe(Code.Canceled);

      const leaving = new AbortController();
      const slow = echoCall({
        body: toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "sleep:2000" })),
        signal: leaving.signal,
      });
      const during = lane?.trySend(slow);
      setTimeout(() => leaving.abort(), 50);
      expect((await failureOf(during)).error.code).toBe(Code.Canceled);
      // Our own cancel says nothing about the service: the lane takes the next call.
      expect((await lane?.trySend(echoCall()))?.body.length).toBeGreaterThan(0);
    } finally {
      lane?.close();
    }
  });

  it("reports a refused connection as not sent, then stands aside", async () => {
    const gone = await peer(() => undefined);
    await gone.close();
    const lane = createHttp1Lane(gone.url, { maxInFlight: 4 });
    try {
      const failure = await failureOf(lane?.trySend(echoCall()));
      expect(failure.sent).toBe(false);
      expect(failure.transport).toBe(true);
      expect(failure.error.code).toBe(Code.Unavailable);
      expect(lane?.trySend(echoCall())).toBeUndefined();
    } finally {
      lane?.close();
    }
  });

  it("stands aside once the service answers `Connection: close` (it is draining)", async () => {
    const draining = await peer((_req, res) => {
      res.shouldKeepAlive = false;
      res.writeHead(200, { "content-type": "application/proto" }).end();
    });
    const lane = createHttp1Lane(draining.url, { maxInFlight: 4 });
    try {
      expect((await lane?.trySend(echoCall()))?.body.length).toBe(0);
      expect(lane?.trySend(echoCall())).toBeUndefined();
    } finally {
      lane?.close();
      await draining.close();
    }
  });

  it("gives up at the deadline, refuses an oversized answer, and counts a cut connection as sent", async () => {
    const odd = await peer((req, res) => {
      if (req.url?.endsWith("/Hang")) return; // never answers
      if (req.url?.endsWith("/Cut")) {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { "content-type": "application/proto" }).end(Buffer.alloc(4096));
    });
    try {
      const lane = (): NonNullable<ReturnType<typeof createHttp1Lane>> =>
        createHttp1Lane(odd.url, { maxInFlight: 4 }) as NonNullable<ReturnType<typeof createHttp1Lane>>;
      const late = await failureOf(lane().trySend(echoCall({ path: "/x/Hang", timeoutMs: 150 })));
      expect(late.error.code).toBe(Code.DeadlineExceeded);
      const big = await failureOf(lane().trySend(echoCall({ maxResponseBytes: 1024 })));
      expect(big.error.code).toBe(Code.ResourceExhausted);
      expect(big.sent).toBe(true);
      const cut = await failureOf(lane().trySend(echoCall({ path: "/x/Cut" })));
      expect(cut.error.code).toBe(Code.Unavailable);
      expect(cut.sent).toBe(true);
      expect(cut.transport).toBe(true);
    } finally {
      await odd.close();
    }
  });
});
