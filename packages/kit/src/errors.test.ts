import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { describe, expect, it } from "vitest";
import {
  DomainError,
  domainErrorToConnectError,
  invalidArgument,
  invalidArguments,
  toConnectError,
  unstorableTextError,
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

  // The shape of pg's DatabaseError: an Error with the SQLSTATE in `code` and a `severity`.
  const databaseError = (code: string, message: string) =>
    Object.assign(new Error(message), { code, severity: "ERROR", routine: "report_invalid_encoding" });

  it.each([
    ["22021", 'invalid byte sequence for encoding "UTF8": 0x00'],
    ["22P05", "unsupported Unicode escape sequence"],
  ])(
    "answers the database refusing the caller's text (SQLSTATE %s) with invalid_argument",
    (code, message) => {
      lines.length = 0;
      const mapped = toConnectError(databaseError(code, message), live, logger, "svc/Method");
      expect(mapped.code).toBe(Code.InvalidArgument);
      expect(mapped.rawMessage).toMatch(/NUL character \(U\+0000\)/);
      expect(mapped.rawMessage).not.toContain(message);
      expect(mapped.findDetails(ErrorInfoSchema)[0]).toMatchObject({
        reason: "UNSTORABLE_TEXT",
        domain: "zero",
      });
      // Logged as a validation gap, with the database's error.
      expect(lines.join("")).toContain("missing validation");
      expect(lines.join("")).toContain(`"code":"${code}"`);
    },
  );

  it("finds the database error as the cause of a wrapping error", () => {
    const wrapped = new Error("transaction failed", { cause: databaseError("22021", "0x00") });
    expect(unstorableTextError(wrapped)?.code).toBe("invalid_argument");
  });

  it("leaves other database errors (and look-alikes without a severity) internal", () => {
    expect(toConnectError(databaseError("23505", "duplicate key"), live, logger, "x/Y").code).toBe(
      Code.Internal,
    );
    expect(toConnectError(databaseError("22P02", "invalid input syntax"), live, logger, "x/Y").code).toBe(
      Code.Internal,
    );
    const notDatabase = Object.assign(new Error("x"), { code: "22021" });
    expect(toConnectError(notDatabase, live, logger, "x/Y").code).toBe(Code.Internal);
  });

  it("reports a cancelled call as cancelled, not as a server bug", () => {
    const controller = new AbortController();
    controller.abort();
    expect(toConnectError(new Error("aborted"), controller.signal, logger, "x/Y").code).toBe(Code.Canceled);
  });
});
