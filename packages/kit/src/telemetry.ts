import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, NoopSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";

export interface TelemetryOptions {
  serviceName: string;
  /** Extra processors, e.g. a SimpleSpanProcessor over an InMemorySpanExporter in tests. */
  spanProcessors?: SpanProcessor[];
}

export interface Telemetry {
  /** Flushes pending spans and stops exporting. */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK. Call it first in `main.ts`, before the server starts. Spans are
 * exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it the SDK
 * still creates spans, so trace ids reach logs and event headers. No auto-instrumentation: the
 * kit's interceptors create the spans that matter and cost nothing unexpected per request.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  const processors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  // The telemetry bootstrap is the one place besides config.ts that reads the environment: the
  // exporter itself takes the endpoint, headers and timeouts from the standard OTEL_* variables.
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint !== undefined && endpoint !== "") {
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  }
  // NodeSDK registers no tracer provider without a processor; a no-op one still gives real ids.
  if (processors.length === 0) processors.push(new NoopSpanProcessor());

  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    spanProcessors: processors,
    textMapPropagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
    instrumentations: [],
    // Metrics are Prometheus (prom-client) and logs go to stdout: without these empty lists the
    // SDK would start OTLP metric and log exporters against localhost by default.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}
