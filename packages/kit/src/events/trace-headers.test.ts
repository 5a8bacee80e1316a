import { headers } from "@nats-io/transport-node";
import { ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { TraceState, W3CTraceContextPropagator } from "@opentelemetry/core";
import { describe, expect, it } from "vitest";
import { natsHeadersGetter, natsHeadersSetter } from "./trace-headers.js";

const propagator = new W3CTraceContextPropagator();

describe("NATS trace headers", () => {
  it("carry a span context and its tracestate through message headers", () => {
    const spanContext = {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: TraceFlags.SAMPLED,
      traceState: new TraceState("zero=1"),
    };
    const h = headers();
    propagator.inject(trace.setSpanContext(ROOT_CONTEXT, spanContext), h, natsHeadersSetter);
    expect(h.get("traceparent")).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(h.get("tracestate")).toBe("zero=1");

    const extracted = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, h, natsHeadersGetter));
    expect(extracted).toMatchObject({
      traceId: spanContext.traceId,
      spanId: spanContext.spanId,
      isRemote: true,
    });
    expect(extracted?.traceState?.get("zero")).toBe("1");
  });

  it("map a missing header to undefined, so a message without trace context starts none", () => {
    const h = headers();
    h.set("ce-id", "x");
    expect(natsHeadersGetter.get(h, "traceparent")).toBeUndefined();
    expect(trace.getSpanContext(propagator.extract(ROOT_CONTEXT, h, natsHeadersGetter))).toBeUndefined();
  });
});
