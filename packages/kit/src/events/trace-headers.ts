import type { MsgHdrs } from "@nats-io/transport-node";
import type { TextMapGetter, TextMapSetter } from "@opentelemetry/api";

/** Writes W3C trace context (`traceparent`, `tracestate`) into NATS message headers. */
export const natsHeadersSetter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/** Reads W3C trace context from NATS message headers. */
export const natsHeadersGetter: TextMapGetter<MsgHdrs> = {
  keys(carrier) {
    return carrier.keys();
  },
  get(carrier, key) {
    // MsgHdrs.get answers "" for a missing key; the propagator expects undefined.
    const value = carrier.get(key);
    return value === "" ? undefined : value;
  },
};
