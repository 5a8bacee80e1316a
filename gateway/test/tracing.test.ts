import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { startTelemetry, type Telemetry } from "@zero/kit/telemetry";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { captureLogs } from "./fixtures/captured-logs.js";
import { createTestTokens } from "./fixtures/tokens.js";

// Each vitest fork runs one file, so this file owns the process's global tracer provider.
const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
const logger = createLogger("gateway-test", { level: "silent" });
// The gateway's own lines, debug ones included.
const logs = captureLogs("debug");
let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  telemetry = startTelemetry({
    serviceName: "gateway-test",
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tokens = await createTestTokens();
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    services: [EchoService],
    upstreamUrls: { testing: echo.url },
    logger: logs.logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
  await telemetry?.shutdown();
});

const traceId = "0af7651916cd43dd8448eb211c80319c";
const callerSpanId = "b7ad6b7169203331";

function spansOfTrace(): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

async function waitForSpan(predicate: (s: ReadableSpan) => boolean): Promise<ReadableSpan> {
  for (let i = 0; i < 50; i++) {
    const found = spansOfTrace().find(predicate);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(
    `span not found among ${spansOfTrace()
      .map((s) => s.name)
      .join(", ")}`,
  );
}

/**
 * caller → the gateway's span (named after the route) → the service's server span, each the child
 * of the one before: one gateway span per request, as for the pass-through, and no client span.
 */
async function expectRestSpanChain(route: string, rpc: string): Promise<void> {
  const edge = await waitForSpan((s) => s.name === route);
  expect(edge.parentSpanContext?.spanId).toBe(callerSpanId);
  const server = await waitForSpan((s) => s.name === rpc && s.kind === SpanKind.SERVER);
  expect(server.parentSpanContext?.spanId).toBe(edge.spanContext().spanId);
  expect(spansOfTrace().filter((s) => s.kind === SpanKind.CLIENT)).toEqual([]);
}

describe("one trace from the caller through the gateway to the service", () => {
  it("REST: gateway server span continues the caller's trace; the service's span is its descendant", async () => {
    exporter.reset();
    const response = await fetch(`${gateway.url}/v1/echo`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: `00-${traceId}-${callerSpanId}-01` },
      body: '{"message":"traced"}',
    });
    expect(response.status).toBe(200);

    await expectRestSpanChain("POST /v1/echo", "zero.testing.v1.EchoService/Echo");
    // The access log line names the trace, to go from a log line to the whole trace.
    expect(logs.lines.find((l) => l.msg === "request" && l.route === "POST /v1/echo")).toMatchObject({
      trace_id: traceId,
    });
  });

  it("REST server streaming: the service's span is the gateway span's child", async () => {
    exporter.reset();
    const response = await fetch(`${gateway.url}/v1/echo/stream?message=m&count=2`, {
      headers: { traceparent: `00-${traceId}-${callerSpanId}-01` },
    });
    expect(response.status).toBe(200);
    expect((await response.text()).trim().split("\n")).toHaveLength(2);

    await expectRestSpanChain("GET /v1/echo/stream", "zero.testing.v1.EchoService/EchoStream");
  });

  it("REST: a retry on another instance is an event of the request's span, not a span of its own", async () => {
    const gone = await startEchoServer({ logger, verifier: (await createTestTokens()).verifier });
    const goneUrl = gone.url;
    await gone.close(1000);
    const twoInstances = await startGateway({
      services: [EchoService],
      upstreamUrls: { testing: [goneUrl, echo.url] },
      logger,
      port: 0,
      host: "127.0.0.1",
      verifier: (await createTestTokens()).verifier,
    });
    try {
      exporter.reset();
      // Round robin: at least one of two calls picks the instance that is gone first.
      for (const message of ["first", "second"]) {
        const response = await fetch(`${twoInstances.url}/v1/echo`, {
          method: "POST",
          headers: { "content-type": "application/json", traceparent: `00-${traceId}-${callerSpanId}-01` },
          body: JSON.stringify({ message }),
        });
        expect(response.status).toBe(200);
      }
      const edges = spansOfTrace().filter((s) => s.name === "POST /v1/echo");
      expect(edges).toHaveLength(2);
      const retries = edges.flatMap((s) => s.events.filter((e) => e.name === "upstream retry"));
      expect(retries.length).toBeGreaterThanOrEqual(1);
      for (const retry of retries)
        expect(retry.attributes).toEqual({ "zero.upstream": "testing", "zero.retry.reason": "unsent" });
      expect(spansOfTrace().filter((s) => s.kind === SpanKind.CLIENT)).toEqual([]);
    } finally {
      await twoInstances.close(1000);
    }
  });

  it("pass-through: the service's span is a child of the gateway's span", async () => {
    exporter.reset();
    const client = createClient(
      EchoService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    );
    await client.echo(
      { message: "traced" },
      { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } },
    );

    const edge = await waitForSpan((s) => s.parentSpanContext?.spanId === callerSpanId);
    expect(edge.name).toBe("zero.testing.v1.EchoService/Echo");
    const service = await waitForSpan((s) => s.parentSpanContext?.spanId === edge.spanContext().spanId);
    expect(service.kind).toBe(SpanKind.SERVER);
  });

  it("a line the gateway logs while serving a request carries its request id and trace ids", async () => {
    exporter.reset();
    const response = await fetch(`${gateway.url}/zero.testing.v1.EchoService/Echo`, {
      method: "POST",
      headers: {
        "content-type": "application/grpc-web-text",
        traceparent: `00-${traceId}-${callerSpanId}-01`,
        "x-request-id": "req-traced-1",
      },
      body: "not*base64!",
    });
    await response.text();

    const edge = await waitForSpan((s) => s.parentSpanContext?.spanId === callerSpanId);
    const line = logs.lines.find((l) => l.msg === "grpc-web-text request body is not base64");
    expect(line).toMatchObject({
      request_id: "req-traced-1",
      trace_id: traceId,
      span_id: edge.spanContext().spanId,
    });
  });
});
