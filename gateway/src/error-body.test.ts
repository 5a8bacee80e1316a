import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DomainError, invalidArgument } from "@zero/kit/errors";
import { ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { asConnectError, httpErrorBody, statusName } from "./error-body.js";

describe("httpErrorBody", () => {
  it.each([
    [Code.Canceled, 499, "CANCELLED"],
    [Code.InvalidArgument, 400, "INVALID_ARGUMENT"],
    [Code.DeadlineExceeded, 504, "DEADLINE_EXCEEDED"],
    [Code.NotFound, 404, "NOT_FOUND"],
    [Code.AlreadyExists, 409, "ALREADY_EXISTS"],
    [Code.PermissionDenied, 403, "PERMISSION_DENIED"],
    [Code.ResourceExhausted, 429, "RESOURCE_EXHAUSTED"],
    [Code.FailedPrecondition, 400, "FAILED_PRECONDITION"],
    [Code.Aborted, 409, "ABORTED"],
    [Code.Unimplemented, 501, "UNIMPLEMENTED"],
    [Code.Internal, 500, "INTERNAL"],
    [Code.Unavailable, 503, "UNAVAILABLE"],
    [Code.Unauthenticated, 401, "UNAUTHENTICATED"],
  ])("maps code %i to HTTP %i %s", (code, http, status) => {
    expect(statusName(code)).toBe(status);
    expect(httpErrorBody(new ConnectError("m", code))).toEqual({
      status: http,
      body: {
        error: {
          code: http,
          status,
          message: "m",
          // Every error names a reason, even one raised without details.
          details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: status, domain: "zero" }],
        },
      },
    });
  });

  it("renders local and wire details as JSON with @type", () => {
    const local = asConnectError(invalidArgument("email", "must contain @")).error;
    expect(httpErrorBody(local).body.error.details).toEqual([
      {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        fieldViolations: [{ field: "email", description: "must contain @" }],
      },
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "INVALID_ARGUMENT", domain: "zero" },
    ]);
    const wire = new ConnectError("x", Code.NotFound);
    wire.details.push(
      {
        type: "google.rpc.ErrorInfo",
        value: toBinary(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "R", domain: "d" })),
      },
      { type: "acme.Custom", value: new Uint8Array([1, 2]) },
    );
    expect(httpErrorBody(wire).body.error.details).toEqual([
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "R", domain: "d" },
      { "@type": "type.googleapis.com/acme.Custom", value: "AQI=" },
    ]);
  });

  it("never leaks an unexpected error's message", () => {
    const { error, unexpected } = asConnectError(new Error("db password is hunter2"));
    expect(unexpected).toBe(true);
    expect(httpErrorBody(error).body.error).toEqual({
      code: 500,
      status: "INTERNAL",
      message: "internal error",
      details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "INTERNAL", domain: "zero" }],
    });
    expect(asConnectError(new DomainError("not_found", "no such user")).error.code).toBe(Code.NotFound);
  });

  it("honours a 4xx ErrorInfo metadata http_status, from the wire or raised locally", () => {
    const info = (httpStatus: string) =>
      create(ErrorInfoSchema, {
        reason: "IDEMPOTENCY_KEY_REUSED",
        domain: "zero",
        metadata: { http_status: httpStatus },
      });
    const wire = new ConnectError("key reused", Code.InvalidArgument);
    wire.details.push({ type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info("422")) });
    const body = httpErrorBody(wire);
    expect(body.status).toBe(422);
    expect(body.body.error).toMatchObject({ code: 422, status: "INVALID_ARGUMENT", message: "key reused" });
    expect(body.body.error.details).toEqual([
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "IDEMPOTENCY_KEY_REUSED",
        domain: "zero",
        metadata: { http_status: "422" },
      },
    ]);
    const local = new ConnectError("gone", Code.FailedPrecondition, undefined, [
      { desc: ErrorInfoSchema, value: info("410") },
    ]);
    expect(httpErrorBody(local).status).toBe(410);
  });

  it.each(["200", "302", "500", "503", "42", "4220", "abc", ""])(
    "ignores http_status %j: only 4xx statuses are honoured",
    (httpStatus) => {
      const error = new ConnectError("x", Code.InvalidArgument, undefined, [
        { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { metadata: { http_status: httpStatus } }) },
      ]);
      expect(httpErrorBody(error).status).toBe(400);
    },
  );

  it("ignores an undecodable ErrorInfo instead of failing", () => {
    const wire = new ConnectError("x", Code.NotFound);
    wire.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0x0f, 0xff]) });
    expect(httpErrorBody(wire).status).toBe(404);
  });
});
