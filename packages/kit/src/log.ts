import { context, createContextKey, isSpanContextValid, trace } from "@opentelemetry/api";
import pino from "pino";
import type { DestinationStream, Logger } from "pino";

export type { Logger } from "pino";

/**
 * The OTel context key under which the server keeps the current request's id, so every line
 * logged while handling a request carries it without threading a child logger through handlers.
 */
export const requestIdContextKey = createContextKey("zero.request_id");

// Defence in depth: handlers should never log secrets, but if one logs a whole object these
// paths are censored anyway. Request bodies and the authorization header are never logged by the kit.
const REDACT = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "cookie",
  "*.cookie",
  "password",
  "*.password",
  "newPassword",
  "*.newPassword",
  "token",
  "*.token",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "secret",
  "*.secret",
];

export interface LoggerOptions {
  /** pino level name; default "info". */
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

/** A JSON logger whose lines carry `service`, and `trace_id`/`span_id`/`request_id` when known. */
export function createLogger(service: string, opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? "info",
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT, censor: "[redacted]" },
      mixin() {
        const active = context.active();
        const fields: Record<string, string> = {};
        const spanContext = trace.getSpanContext(active);
        if (spanContext && isSpanContextValid(spanContext)) {
          fields.trace_id = spanContext.traceId;
          fields.span_id = spanContext.spanId;
        }
        const requestId = active.getValue(requestIdContextKey);
        if (typeof requestId === "string") fields.request_id = requestId;
        return fields;
      },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
