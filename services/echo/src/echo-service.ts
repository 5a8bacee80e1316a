import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { DomainError, ERROR_DOMAIN, domainErrorToConnectError, type DomainErrorCode } from "@zero/kit/errors";
import { requirePrincipal } from "@zero/kit/principal";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import type { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";

const domainCodes: readonly DomainErrorCode[] = [
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "already_exists",
  "failed_precondition",
  "resource_exhausted",
  "aborted",
  "unavailable",
  "deadline_exceeded",
];

const MAX_STREAM_COUNT = 1000;

/** zero.testing.v1.EchoService: one method per access level, a stream, and a failure on demand. */
export const echoService: ServiceImpl<typeof EchoService> = {
  echo: (req) => ({ message: req.message }),
  whoAmI(_req, ctx) {
    const principal = requirePrincipal(ctx);
    return { subject: principal.subject, roles: principal.roles };
  },
  adminEcho: (req) => ({ message: req.message }),
  // Reachable only with a service token, directly: the gateway refuses it by every protocol.
  internalEcho: (req) => ({ message: req.message }),
  // No access option: the kit refuses it before this runs.
  undecided: () => ({}),
  echoStream(req) {
    if (req.count < 0 || req.count > MAX_STREAM_COUNT) {
      throw new DomainError("invalid_argument", `count must be 0 to ${MAX_STREAM_COUNT}`, {
        fieldViolations: [{ field: "count", description: `must be 0 to ${MAX_STREAM_COUNT}` }],
      });
    }
    return createAsyncIterable(
      Array.from({ length: req.count }, (_, index) => ({ message: req.message, index })),
    );
  },
  fail(req) {
    const code = domainCodes.find((c) => c === req.code);
    if (code === undefined) {
      throw new DomainError(
        "invalid_argument",
        `unknown code "${req.code}": use one of ${domainCodes.join(", ")}`,
        {
          fieldViolations: [{ field: "code", description: "not a domain error code" }],
        },
      );
    }
    const error = new DomainError(code, req.message || `failed with ${code} on request`, {
      ...(code === "invalid_argument"
        ? { fieldViolations: [{ field: "code", description: req.message }] }
        : {}),
    });
    if (req.httpStatus === "") throw error;
    // What a service does when REST needs a status the gRPC code cannot express (422, …): the
    // gateway reads ErrorInfo metadata `http_status`.
    const connectError = domainErrorToConnectError(error);
    for (const detail of connectError.details) {
      if ("desc" in detail && detail.desc === ErrorInfoSchema) {
        detail.value = create(ErrorInfoSchema, {
          reason: error.reason ?? code.toUpperCase(),
          domain: ERROR_DOMAIN,
          metadata: { http_status: req.httpStatus },
        });
      }
    }
    throw connectError;
  },
};
