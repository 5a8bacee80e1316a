import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import type { Logger } from "./log.js";
import { interceptStream } from "./interceptor-stream.js";

/** The codes a domain may fail with. Anything else a handler throws is a bug: it becomes `internal`. */
export type DomainErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "aborted"
  | "unavailable"
  | "deadline_exceeded";

export interface FieldViolation {
  /** The field's path in the request, e.g. `email` or `address.postal_code`. */
  field: string;
  description: string;
}

export interface DomainErrorOptions {
  fieldViolations?: FieldViolation[];
  /** A stable machine-readable reason (UPPER_SNAKE); defaults to the code upper-cased. */
  reason?: string;
  /** Logged with the error, never sent. */
  cause?: unknown;
  /** `google.rpc.ErrorInfo` metadata, e.g. `{ http_status: "422" }` for a REST status the gRPC table cannot express. */
  metadata?: Record<string, string>;
  /** When the caller may try again (a throttle): sent as `google.rpc.RetryInfo`, `Retry-After` over REST. */
  retryAfterMs?: number;
}

/**
 * An expected failure with a message meant for the caller. The message is sent as is, so it must
 * say what to do ("email is already registered: sign in instead") and never contain secrets.
 */
export class DomainError extends Error {
  readonly code: DomainErrorCode;
  readonly fieldViolations?: FieldViolation[];
  readonly reason?: string;
  readonly metadata?: Record<string, string>;
  readonly retryAfterMs?: number;

  constructor(code: DomainErrorCode, message: string, opts: DomainErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "DomainError";
    this.code = code;
    if (opts.fieldViolations !== undefined) this.fieldViolations = opts.fieldViolations;
    if (opts.reason !== undefined) this.reason = opts.reason;
    if (opts.metadata !== undefined) this.metadata = opts.metadata;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

/** One bad field: `invalid_argument` with a `google.rpc.BadRequest` field violation. */
export function invalidArgument(field: string, description: string): DomainError {
  return invalidArguments([{ field, description }]);
}

/** Several bad fields reported together, so a client can fix a form in one round trip. */
export function invalidArguments(violations: FieldViolation[]): DomainError {
  const message = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new DomainError("invalid_argument", message, { fieldViolations: violations });
}

const CODES: Record<DomainErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  aborted: Code.Aborted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
};

/** Errors are reported in this ErrorInfo domain, so clients can tell Zero's reasons from others'. */
export const ERROR_DOMAIN = "zero";

export function domainErrorToConnectError(error: DomainError): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [];
  if (error.fieldViolations !== undefined && error.fieldViolations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: create(BadRequestSchema, { fieldViolations: error.fieldViolations }),
    });
  }
  details.push({
    desc: ErrorInfoSchema,
    value: create(ErrorInfoSchema, {
      reason: error.reason ?? error.code.toUpperCase(),
      domain: ERROR_DOMAIN,
      ...(error.metadata === undefined ? {} : { metadata: error.metadata }),
    }),
  });
  if (error.retryAfterMs !== undefined) {
    details.push({
      desc: RetryInfoSchema,
      value: create(RetryInfoSchema, {
        retryDelay: { seconds: BigInt(Math.max(1, Math.ceil(error.retryAfterMs / 1000))) },
      }),
    });
  }
  return new ConnectError(error.message, CODES[error.code], undefined, details);
}

// SQLSTATEs PostgreSQL answers only for text it was given and cannot store: 22021
// character_not_in_repertoire ("invalid byte sequence for encoding UTF8: 0x00", a NUL in `text`)
// and 22P05 untranslatable_character ("unsupported Unicode escape sequence", `\u0000` in `jsonb`).
const UNSTORABLE_TEXT_SQLSTATES = new Set(["22021", "22P05"]);

/**
 * The caller's text the database refused (see UNSTORABLE_TEXT_SQLSTATES) as `invalid_argument`,
 * or undefined for any other error. Requests are meant to be refused before that (request-text.ts
 * and each service's rules); this is the safety net for text that got through, so it stays a 400.
 * The database error (pg's DatabaseError, possibly as the cause of another) is recognised by its
 * shape, so this module needs no database driver.
 */
export function unstorableTextError(error: unknown): DomainError | undefined {
  for (let e = error, depth = 0; typeof e === "object" && e !== null && depth < 5; depth++) {
    const { code, severity } = e as { code?: unknown; severity?: unknown };
    if (typeof code === "string" && typeof severity === "string" && UNSTORABLE_TEXT_SQLSTATES.has(code)) {
      return new DomainError(
        "invalid_argument",
        "the request contains text that cannot be stored, such as the NUL character (U+0000): remove it",
        { reason: "UNSTORABLE_TEXT", cause: error },
      );
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Turns whatever a handler threw into what the caller may see: DomainError → its code and details,
 * ConnectError → unchanged, a cancelled call → its cancellation, text the database cannot store →
 * `invalid_argument`, anything else → `internal` with the cause logged here and never sent.
 */
export function toConnectError(
  error: unknown,
  signal: AbortSignal,
  logger: Logger,
  rpc: string,
): ConnectError {
  if (error instanceof DomainError) return domainErrorToConnectError(error);
  if (error instanceof ConnectError) return error;
  if (signal.aborted) return ConnectError.from(signal.reason, Code.Canceled);
  const unstorable = unstorableTextError(error);
  if (unstorable !== undefined) {
    // The caller gets a 400, but a request field escaped validation: worth fixing where it enters.
    logger.warn({ err: error, rpc }, "request text refused by the database (missing validation)");
    return domainErrorToConnectError(unstorable);
  }
  logger.error({ err: error, rpc }, "unexpected error in handler");
  return new ConnectError("internal error", Code.Internal);
}

export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const rpc = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return {
        ...res,
        message: interceptStream(res.message, {
          mapError: (error) => toConnectError(error, req.signal, logger, rpc),
        }),
      };
    } catch (error) {
      throw toConnectError(error, req.signal, logger, rpc);
    }
  };
}
