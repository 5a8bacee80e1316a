import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import type { Context, Span, TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import { interceptStream } from "./interceptor-stream.js";
import { requestIdContextKey } from "./log.js";

const TRACER_NAME = "@zero/kit";

const headersGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

const headersSetter: TextMapSetter<Headers> = {
  set: (headers, key, value) => headers.set(key, value),
};

/** Writes the active trace context (`traceparent`, `tracestate`) through `set`, e.g. into NATS headers. */
export function injectTraceHeaders(
  set: (key: string, value: string) => void,
  ctx: Context = context.active(),
): void {
  propagation.inject(ctx, undefined, { set: (_carrier, key, value) => set(key, value) });
}

/** The trace context carried by incoming headers (ROOT-based when there is none); pass it to `context.with`. */
export function extractTraceContext(get: (key: string) => string | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, undefined, {
    // NATS answers "" for a missing header: treat that as absent.
    get: (_carrier, key) => get(key) || undefined,
    keys: () => ["traceparent", "tracestate", "baggage"],
  });
}

function rpcSystem(contentType: string | null): string {
  if (contentType?.startsWith("application/grpc") === true) return "grpc";
  return "connect_rpc";
}

// OTel RPC semantic conventions: for a server these codes are the server's fault; the others
// (invalid argument, not found, ...) describe the caller's request and leave the status unset.
const SERVER_FAULTS = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

function endSpan(span: Span, error: unknown, faults: ReadonlySet<Code> | undefined): void {
  if (error === undefined) {
    span.setAttribute("rpc.grpc.status_code", 0);
  } else {
    const code = ConnectError.from(error).code;
    span.setAttribute("rpc.grpc.status_code", code);
    if (faults === undefined || faults.has(code)) {
      // Only the code's name: error messages may quote request data.
      span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
    }
  }
  span.end();
}

/** Ends `span` with a unary response, or when a streamed response's messages have all been read. */
function endingSpan<T extends UnaryResponse | StreamResponse>(
  res: T,
  span: Span,
  ctx: Context,
  faults: ReadonlySet<Code> | undefined,
): T {
  if (!res.stream) {
    endSpan(span, undefined, faults);
    return res;
  }
  return {
    ...res,
    message: interceptStream(res.message, { context: ctx, onEnd: (error) => endSpan(span, error, faults) }),
  };
}

// A caller-supplied request id is only kept when it is short and plain, so it is safe to log.
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Server span per RPC, named `<package.Service>/<Method>`, continuing the caller's W3C trace.
 * The handler (and anything it writes, e.g. outbox rows) runs inside the span's context, together
 * with the request id (`x-request-id`, or a new one) that log lines carry.
 */
export const tracingServerInterceptor: Interceptor = (next) => async (req) => {
  const parent = propagation.extract(ROOT_CONTEXT, req.header, headersGetter);
  const span = trace.getTracer(TRACER_NAME).startSpan(
    `${req.service.typeName}/${req.method.name}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system": rpcSystem(req.header.get("content-type")),
        "rpc.service": req.service.typeName,
        "rpc.method": req.method.name,
      },
    },
    parent,
  );
  const incomingId = req.header.get("x-request-id");
  const requestId = incomingId !== null && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
  const ctx = trace.setSpan(parent, span).setValue(requestIdContextKey, requestId);
  try {
    return endingSpan(await context.with(ctx, () => next(req)), span, ctx, SERVER_FAULTS);
  } catch (error) {
    endSpan(span, error, SERVER_FAULTS);
    throw error;
  }
};

/** Client span per outgoing RPC; injects `traceparent` so the callee continues the trace. */
export const tracingClientInterceptor: Interceptor = (next) => async (req) => {
  const span = trace.getTracer(TRACER_NAME).startSpan(`${req.service.typeName}/${req.method.name}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      "rpc.system": rpcSystem(req.header.get("content-type")),
      "rpc.service": req.service.typeName,
      "rpc.method": req.method.name,
    },
  });
  const ctx = trace.setSpan(context.active(), span);
  propagation.inject(ctx, req.header, headersSetter);
  try {
    return endingSpan(await context.with(ctx, () => next(req)), span, ctx, undefined);
  } catch (error) {
    endSpan(span, error, undefined);
    throw error;
  }
};
