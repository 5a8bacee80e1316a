import { create, createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { DomainError, ERROR_DOMAIN, domainErrorToConnectError } from "@zero/kit/errors";
import {
  ErrorInfoSchema,
  RetryInfoSchema,
  file_google_rpc_error_details,
  type ErrorInfo,
  type RetryInfo,
} from "@zero/proto/google/rpc/error_details_pb";

// The REST error shape of DESIGN.md (the Google API error model):
//   {"error":{"code":<http>,"status":"INVALID_ARGUMENT","message":"…","details":[{"@type":…},…]}}
// with the standard gRPC → HTTP table (CANCELLED 499, FAILED_PRECONDITION 400, RESOURCE_EXHAUSTED
// 429, UNAVAILABLE 503, …) from @connectrpc/connect.

/** Detail types rendered as JSON; anything else keeps its bytes (base64) beside its `@type`. */
const detailRegistry = createRegistry(file_google_rpc_error_details);

const typeUrlPrefix = "type.googleapis.com/";

export interface HttpErrorBody {
  readonly status: number;
  readonly body: { error: { code: number; status: string; message: string; details: JsonValue[] } };
}

/** `Code.InvalidArgument` → `INVALID_ARGUMENT`; Google spells Canceled `CANCELLED`. */
export function statusName(code: Code): string {
  if (code === Code.Canceled) return "CANCELLED";
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * Normalises anything thrown while serving a REST call. DomainErrors raised by the gateway itself
 * become ConnectErrors with their BadRequest/ErrorInfo details; an unexpected error becomes a
 * bare INTERNAL whose cause the caller logs (never sent).
 */
export function asConnectError(error: unknown): { error: ConnectError; unexpected: boolean } {
  if (error instanceof DomainError) return { error: domainErrorToConnectError(error), unexpected: false };
  if (error instanceof ConnectError) return { error, unexpected: false };
  return { error: new ConnectError("internal error", Code.Internal), unexpected: true };
}

export function httpErrorBody(error: ConnectError): HttpErrorBody {
  const status = statusOverride(error) ?? codeToHttpStatus(error.code);
  const details = error.details.map(renderDetail);
  // Every error names its reason, as DESIGN.md's shape has it, whoever raised it: a refusal of the
  // gateway's own (404, 405) or a service's error without details gets the status as its reason.
  if (!details.some((d) => isJsonObject(d) && d["@type"] === typeUrlPrefix + ErrorInfoSchema.typeName)) {
    details.push({
      "@type": typeUrlPrefix + ErrorInfoSchema.typeName,
      reason: statusName(error.code),
      domain: ERROR_DOMAIN,
    });
  }
  return {
    status,
    body: { error: { code: status, status: statusName(error.code), message: error.rawMessage, details } },
  };
}

function isJsonObject(value: JsonValue): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The seconds a `google.rpc.RetryInfo` detail asks the caller to wait (a service's throttle), for
 * REST's `Retry-After`; undefined when there is none.
 */
export function retryAfterSeconds(error: ConnectError): number | undefined {
  for (const detail of error.details) {
    let info: RetryInfo | undefined;
    try {
      if ("desc" in detail) {
        if (detail.desc.typeName === RetryInfoSchema.typeName)
          info = create(RetryInfoSchema, detail.value as RetryInfo);
      } else if (detail.type === RetryInfoSchema.typeName) {
        info = fromBinary(RetryInfoSchema, detail.value);
      }
    } catch {
      continue;
    }
    const delay = info?.retryDelay;
    if (delay !== undefined) return Math.max(1, Math.ceil(Number(delay.seconds) + delay.nanos / 1e9));
  }
  return undefined;
}

/**
 * A service may ask for a REST status the gRPC → HTTP table cannot express (422 for an
 * Idempotency-Key reused with different parameters) with ErrorInfo metadata `http_status`. Only
 * 4xx statuses are honoured: a service cannot make a client error look like a server fault, nor
 * a failure look like a success.
 */
export function statusOverride(error: ConnectError): number | undefined {
  for (const detail of error.details) {
    let info: ErrorInfo | undefined;
    if ("desc" in detail) {
      if (detail.desc.typeName === ErrorInfoSchema.typeName)
        info = create(ErrorInfoSchema, detail.value as ErrorInfo);
    } else if (detail.type === ErrorInfoSchema.typeName) {
      try {
        info = fromBinary(ErrorInfoSchema, detail.value);
      } catch {
        continue;
      }
    }
    const wanted = info?.metadata["http_status"];
    if (wanted !== undefined && /^4\d\d$/.test(wanted)) return Number(wanted);
  }
  return undefined;
}

function renderDetail(detail: ConnectError["details"][number]): JsonValue {
  if ("desc" in detail) {
    // Raised locally (e.g. the gateway's own validation): a message or its init shape.
    const json = toJson(detail.desc, create(detail.desc, detail.value)) as JsonObject;
    return { "@type": typeUrlPrefix + detail.desc.typeName, ...json };
  }
  // From the wire (an upstream's error): decode the types we know, keep the rest opaque.
  const desc = detailRegistry.getMessage(detail.type);
  if (desc) {
    try {
      return {
        "@type": typeUrlPrefix + detail.type,
        ...(toJson(desc, fromBinary(desc, detail.value)) as JsonObject),
      };
    } catch {
      // A malformed detail must not turn a clean error into a 500: fall through to the raw form.
    }
  }
  return { "@type": typeUrlPrefix + detail.type, value: base64Encode(detail.value) };
}
