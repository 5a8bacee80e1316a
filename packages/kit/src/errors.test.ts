import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { describe, expect, it } from "vitest";
import {
  DomainError,
  domainErrorToConnectError,
  invalidArgument,
  invalidArguments,
  toConnectError,
} from "./errors.js";
import { createLogger } from "./log.js";

const lines: string[] = [];
const logger = createLogger("errors-test", {
  destination: { write: (line: string) => void lines.push(line) },
});

describe("domain errors", () => {
  it("invalidArgument carries one field violation and a readable message", () => {
    const error = invalidArgument("email", "must be an email address");
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe("email: must be an email address");
    expect(error.fieldViolations).toEqual([{ field: "email", description: "must be an email address" }]);
  });

  it("invalidArguments reports several fields at once", () => {
    const error = invalidArguments([
      { field: "email", description: "is required" },
      { field: "password", description: "is too short" },
    ]);
    expect(error.message).toBe("email: is required; password: is too short");
    const connect = domainErrorToConnectError(error);
    expect(connect.code).toBe(Code.InvalidArgument);
    // Details survive the round trip through the wire format.
    expect(connect.findDetails(BadRequestSchema)[0]?.fieldViolations).toHaveLength(2);
  });

  it("a custom reason replaces the upper-cased code in ErrorInfo", () => {
    const connect = domainErrorToConnectError(
      new DomainError("already_exists", "email is already registered", { reason: "EMAIL_TAKEN" }),
    );
    expect(connect.code).toBe(Code.AlreadyExists);
    expect(connect.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "EMAIL_TAKEN", domain: "zero" });
    expect(connect.findDetails(BadRequestSchema)).toHaveLength(0);
  });

  it("carries ErrorInfo metadata, e.g. the REST status the gateway should answer", () => {
    const connect = domainErrorToConnectError(
      new DomainError("invalid_argument", "key reused", {
        reason: "IDEMPOTENCY_KEY_REUSED",
        metadata: { http_status: "422" },
      }),
    );
    expect(connect.findDetails(ErrorInfoSchema)[0]?.metadata).toEqual({ http_status: "422" });
  });
});

describe("toConnectError", () => {
  const live = new AbortController().signal;

  it("passes ConnectErrors through", () => {
    const original = new ConnectError("nope", Code.NotFound);
    expect(toConnectError(original, live, logger, "x/Y")).toBe(original);
  });

  it("hides unexpected errors behind `internal` and logs the cause", () => {
    const mapped = toConnectError(new TypeError("cannot read x of undefined"), live, logger, "svc/Method");
    expect(mapped.code).toBe(Code.Internal);
    expect(mapped.rawMessage).toBe("internal error");
    expect(lines.join("")).toContain("cannot read x of undefined");
  });

  it("reports a cancelled call as cancelled, not as a server bug", () => {
    const controller = new AbortController();
    controller.abort();
    expect(toConnectError(new Error("aborted"), controller.signal, logger, "x/Y").code).toBe(Code.Canceled);
  });
});
