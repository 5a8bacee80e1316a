import { Code, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startServer } from "../src/server.js";
import type { Server } from "../src/server.js";
import { startTelemetry } from "../src/telemetry.js";
import type { Telemetry } from "../src/telemetry.js";
import { extractTraceContext, injectTraceHeaders, tracingClientInterceptor } from "../src/tracing.js";
import { echoService } from "./fixtures/echo-service.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer } from "./fixtures/tokens.js";

const exporter = new InMemorySpanExporter();
// Exports wait for the SDK's resource detection; flushed before every look (a loaded machine once
// checked before the export had happened).
const processor = new SimpleSpanProcessor(exporter);
const logs = captureLogs();
let telemetry: Telemetry;
let server: Server;
let client: Client<typeof EchoService>;

const activeTraceId = (): string => trace.getActiveSpan()?.spanContext().traceId ?? "none";

beforeAll(async () => {
  telemetry = startTelemetry({
    serviceName: "kit-test",
    spanProcessors: [processor],
  });
  server = await startServer({
    name: "echo",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [EchoService],
    // Handlers that report the trace they run in, so the test sees what a handler sees.
    routes: (router) =>
      router.service(EchoService, {
        ...echoService,
        async echo(req) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          logs.logger.info({ note: req.message }, "inside the handler");
          return { message: activeTraceId() };
        },
        async *echoStream(req) {
          for (let index = 0; index < req.count; index++) {
            await new Promise((resolve) => setTimeout(resolve, 2));
            yield { message: activeTraceId(), index };
          }
        },
      }),
    verifier: (await createTestIssuer()).verifier,
  });
  client = createClient(
    EchoService,
    createGrpcTransport({ baseUrl: server.url, interceptors: [tracingClientInterceptor] }),
  );
});

afterAll(async () => {
  await server.close(2000);
  await telemetry.shutdown();
});

beforeEach(() => exporter.reset());

async function spanNamed(name: string, kind: SpanKind): Promise<ReadableSpan> {
  await processor.forceFlush();
  const span = exporter.getFinishedSpans().find((s) => s.name === name && s.kind === kind);
  if (span === undefined) throw new Error(`no ${SpanKind[kind]} span named ${name}`);
  return span;
}

describe("RPC spans", () => {
  it("continue the caller's trace, and the handler runs inside the server span", async () => {
    const root = trace.getTracer("test").startSpan("test-root");
    const res = await context.with(trace.setSpan(context.active(), root), () =>
      client.echo({ message: "trace me" }),
    );
    root.end();

    const clientSpan = await spanNamed("zero.testing.v1.EchoService/Echo", SpanKind.CLIENT);
    const serverSpan = await spanNamed("zero.testing.v1.EchoService/Echo", SpanKind.SERVER);
    const traceId = root.spanContext().traceId;
    expect(clientSpan.spanContext().traceId).toBe(traceId);
    expect(serverSpan.spanContext().traceId).toBe(traceId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(res.message).toBe(traceId);
    expect(serverSpan.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "zero.testing.v1.EchoService",
      "rpc.method": "Echo",
      "rpc.grpc.status_code": 0,
    });
    expect(serverSpan.status.code).toBe(SpanStatusCode.UNSET);
    expect(serverSpan.resource.attributes["service.name"]).toBe("kit-test");
  });

  it("starts a new trace for a call without traceparent, and covers streams to their end", async () => {
    const indexes: number[] = [];
    const traceIds = new Set<string>();
    for await (const res of client.echoStream({ message: "s", count: 3 })) {
      indexes.push(res.index);
      traceIds.add(res.message);
    }
    expect(indexes).toEqual([0, 1, 2]);
    const serverSpan = await spanNamed("zero.testing.v1.EchoService/EchoStream", SpanKind.SERVER);
    // Every message was produced inside the server span's trace.
    expect([...traceIds]).toEqual([serverSpan.spanContext().traceId]);
  });

  it("mark server faults as errors, not the caller's mistakes", async () => {
    // The client interceptor passes the service's error on unchanged, and records it on its span.
    await expect(client.fail({ code: "not_found" })).rejects.toMatchObject({ code: Code.NotFound });
    const notFound = await spanNamed("zero.testing.v1.EchoService/Fail", SpanKind.SERVER);
    expect(notFound.status.code).toBe(SpanStatusCode.UNSET);
    expect(notFound.attributes["rpc.grpc.status_code"]).toBe(5);
    const notFoundClient = await spanNamed("zero.testing.v1.EchoService/Fail", SpanKind.CLIENT);
    expect(notFoundClient.attributes["rpc.grpc.status_code"]).toBe(5);
    expect(notFoundClient.parentSpanContext).toBeUndefined();

    exporter.reset();
    await client.fail({ code: "bug" }).catch(() => undefined);
    const internal = await spanNamed("zero.testing.v1.EchoService/Fail", SpanKind.SERVER);
    expect(internal.status.code).toBe(SpanStatusCode.ERROR);
    expect(internal.attributes["rpc.grpc.status_code"]).toBe(13);
    expect(JSON.stringify(internal.status)).not.toContain("hunter2");
  });
});

describe("log correlation", () => {
  it("lines written by a handler carry trace_id, span_id and the caller's request id", async () => {
    const plain = createClient(
      EchoService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await plain.echo({ message: "correlate" }, { headers: { "x-request-id": "req-42" } });
    const serverSpan = await spanNamed("zero.testing.v1.EchoService/Echo", SpanKind.SERVER);
    const line = logs.lines.find((l) => l.note === "correlate");
    expect(line).toMatchObject({
      service: "kit-test",
      trace_id: serverSpan.spanContext().traceId,
      span_id: serverSpan.spanContext().spanId,
      request_id: "req-42",
    });
  });

  it("a missing or unsafe request id is replaced by a fresh one", async () => {
    const plain = createClient(
      EchoService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await plain.echo(
      { message: "unsafe id" },
      { headers: { "x-request-id": `id with spaces and "quotes" ${"x".repeat(200)}` } },
    );
    const line = logs.lines.find((l) => l.note === "unsafe id");
    expect(line?.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("trace headers for messages", () => {
  it("inject the active context and extract it back", () => {
    const span = trace.getTracer("test").startSpan("producer");
    const headers = new Map<string, string>();
    context.with(trace.setSpan(context.active(), span), () =>
      injectTraceHeaders((k, v) => headers.set(k, v)),
    );
    span.end();
    expect(headers.get("traceparent")).toMatch(
      new RegExp(`^00-${span.spanContext().traceId}-${span.spanContext().spanId}-01$`),
    );

    const extracted = extractTraceContext((k) => headers.get(k));
    expect(trace.getSpanContext(extracted)?.traceId).toBe(span.spanContext().traceId);
    // NATS answers "" for a missing header.
    expect(trace.getSpanContext(extractTraceContext(() => ""))).toBeUndefined();
  });
});
