import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { BadRequestSchema } from "@zero/proto/google/rpc/error_details_pb";
import { SetUserRolesRequestSchema } from "@zero/proto/zero/auth/v1/user_admin_pb";
import { CreatePaymentRequestSchema } from "@zero/proto/zero/payments/v1/payments_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { UpdateProfileRequestSchema } from "@zero/proto/zero/users/v1/users_pb";
import { describe, expect, it } from "vitest";
import { createErrorInterceptor } from "./errors.js";
import { createLogger } from "./log.js";
import { createNulRejectingInterceptor, NUL_DESCRIPTION, nulViolations } from "./request-text.js";

const NUL = "\u0000";

describe("nulViolations", () => {
  it("names every string holding U+0000 by its path: fields, nested fields, map values, list items", () => {
    const payment = create(CreatePaymentRequestSchema, {
      currency: "EUR",
      description: `a${NUL}b`,
      receiptEmail: `a${NUL}b@example.com`,
      metadata: { fine: "ok", note: `x${NUL}`, "odd key!": NUL },
    });
    expect(nulViolations(CreatePaymentRequestSchema, payment)).toEqual([
      { field: "description", description: NUL_DESCRIPTION },
      { field: "metadata.note", description: NUL_DESCRIPTION },
      // A key that cannot be shown as part of a path is not echoed.
      { field: "metadata", description: NUL_DESCRIPTION },
      { field: "receipt_email", description: NUL_DESCRIPTION },
    ]);
    const profile = create(UpdateProfileRequestSchema, { userId: "me", profile: { bio: `x${NUL}y` } });
    expect(nulViolations(UpdateProfileRequestSchema, profile)).toEqual([
      { field: "profile.bio", description: NUL_DESCRIPTION },
    ]);
    const roles = create(SetUserRolesRequestSchema, { userId: "u", roles: ["customer", `ad${NUL}min`] });
    expect(nulViolations(SetUserRolesRequestSchema, roles)).toEqual([
      { field: "roles[1]", description: NUL_DESCRIPTION },
    ]);
  });

  it("reports a NUL in a map key, and accepts other control characters and clean requests", () => {
    const key = create(CreatePaymentRequestSchema, { metadata: { [`k${NUL}`]: "v" } });
    expect(nulViolations(CreatePaymentRequestSchema, key)).toEqual([
      { field: "metadata", description: `keys ${NUL_DESCRIPTION}` },
    ]);
    const clean = create(CreatePaymentRequestSchema, {
      description: "tab\there\u0001",
      metadata: { k: "v" },
    });
    expect(nulViolations(CreatePaymentRequestSchema, clean)).toEqual([]);
  });

  it("skips exempt paths", () => {
    const payment = create(CreatePaymentRequestSchema, { description: NUL, orderId: NUL });
    expect(nulViolations(CreatePaymentRequestSchema, payment, { exempt: ["description"] })).toEqual([
      { field: "order_id", description: NUL_DESCRIPTION },
    ]);
  });
});

describe("createNulRejectingInterceptor", () => {
  const logger = createLogger("request-text-test", { destination: { write: () => undefined } });
  let handled = 0;
  const transport = createRouterTransport(
    (router) =>
      router.service(EchoService, {
        echo: (req) => {
          handled++;
          return { message: req.message };
        },
        echoStream: async function* (req) {
          handled++;
          yield await Promise.resolve({ message: req.message });
        },
      }),
    { router: { interceptors: [createErrorInterceptor(logger), createNulRejectingInterceptor()] } },
  );
  const client = createClient(EchoService, transport);

  it("refuses the request before the handler runs, with a BadRequest field violation", async () => {
    const before = handled;
    const error = await client.echo({ message: `a${NUL}b` }).then(
      () => new ConnectError("expected the call to fail"),
      (e: unknown) => ConnectError.from(e),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(`message: ${NUL_DESCRIPTION}`);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations).toMatchObject([
      { field: "message", description: NUL_DESCRIPTION },
    ]);
    expect(handled).toBe(before);
  });

  it("passes clean requests, unary and server-streaming", async () => {
    expect((await client.echo({ message: "hello" })).message).toBe("hello");
    const streamed: string[] = [];
    for await (const res of client.echoStream({ message: "hi" })) streamed.push(res.message);
    expect(streamed).toEqual(["hi"]);
  });
});
