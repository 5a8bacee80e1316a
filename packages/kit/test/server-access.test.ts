import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema } from "@zero/proto/google/rpc/error_details_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DomainErrorCode } from "../src/errors.js";
import { principalKey } from "../src/principal.js";
import type { Principal } from "../src/principal.js";
import { startServer } from "../src/server.js";
import type { Server } from "../src/server.js";
import { echoRoutes } from "./fixtures/echo-service.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer } from "./fixtures/tokens.js";
import type { TestIssuer } from "./fixtures/tokens.js";

let server: Server;
let issuer: TestIssuer;
const logs = captureLogs();
// What handlers saw as the principal, by method: an interceptor given to startServer runs after
// the kit's access policy, exactly where a handler would read it.
const principals = new Map<string, Principal | undefined>();
const recordPrincipal: Interceptor = (next) => (req) => {
  principals.set(req.method.name, req.contextValues.get(principalKey));
  return next(req);
};

beforeAll(async () => {
  issuer = await createTestIssuer();
  server = await startServer({
    name: "echo",
    host: "127.0.0.1",
    port: 0,
    logger: logs.logger,
    services: [EchoService],
    routes: echoRoutes,
    verifier: issuer.verifier,
    interceptors: [recordPrincipal],
  });
});

afterAll(async () => {
  await server.close(2000);
});

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

const transports: [string, () => Transport][] = [
  ["Connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
];

describe.each(transports)("access policy over %s", (_name, transport) => {
  let client: Client<typeof EchoService>;
  let tokens: { user: string; admin: string; roleOnly: string; service: string };
  const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    client = createClient(EchoService, transport());
    tokens = {
      user: await issuer.token("user-1", ["user"]),
      admin: await issuer.token("admin-1", ["user", "admin"]),
      // A user token that merely lists a `service` role: not a service.
      roleOnly: await issuer.token("user-2", ["service"]),
      service: await issuer.token("svc-cart", ["service"], { kind: "service" }),
    };
  });

  it("PUBLIC: no token needed; a valid token still identifies the caller; a bad one is ignored", async () => {
    expect((await client.echo({ message: "anon" })).message).toBe("anon");
    expect(principals.get("Echo")).toBeUndefined();

    await client.echo({ message: "known" }, bearer(tokens.user));
    expect(principals.get("Echo")).toEqual({ subject: "user-1", roles: ["user"], kind: "user" });

    expect((await client.echo({ message: "bad token" }, bearer("garbage.token.here"))).message).toBe(
      "bad token",
    );
    expect(principals.get("Echo")).toBeUndefined();
  });

  it("USER: needs a valid bearer token", async () => {
    const none = await failure(client.whoAmI({}));
    expect(none.code).toBe(Code.Unauthenticated);
    expect(none.rawMessage).toMatch(/authorization: Bearer/);

    const basic = await failure(client.whoAmI({}, { headers: { authorization: "Basic dXNlcjpwYXNz" } }));
    expect(basic.code).toBe(Code.Unauthenticated);
    expect(basic.rawMessage).toMatch(/Bearer <token>/);

    expect((await failure(client.whoAmI({}, bearer("not-a-token")))).code).toBe(Code.Unauthenticated);

    const me = await client.whoAmI({}, bearer(tokens.user));
    expect(me.subject).toBe("user-1");
    expect(me.roles).toEqual(["user"]);
  });

  it("ADMIN: needs the admin role", async () => {
    expect((await failure(client.adminEcho({ message: "x" }))).code).toBe(Code.Unauthenticated);
    const denied = await failure(client.adminEcho({ message: "x" }, bearer(tokens.user)));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ADMIN_REQUIRED");
    expect((await client.adminEcho({ message: "ok" }, bearer(tokens.admin))).message).toBe("ok");
  });

  it("INTERNAL: only service principals", async () => {
    expect((await failure(client.internalEcho({ message: "x" }))).code).toBe(Code.Unauthenticated);
    expect((await failure(client.internalEcho({ message: "x" }, bearer(tokens.user)))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await failure(client.internalEcho({ message: "x" }, bearer(tokens.admin)))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await failure(client.internalEcho({ message: "x" }, bearer(tokens.roleOnly)))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await client.internalEcho({ message: "svc" }, bearer(tokens.service))).message).toBe("svc");
    expect(principals.get("InternalEcho")?.kind).toBe("service");
  });

  it("a method without an access policy is refused to everyone", async () => {
    for (const options of [{}, bearer(tokens.user), bearer(tokens.admin), bearer(tokens.service)]) {
      const error = await failure(client.undecided({}, options));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ACCESS_UNDECLARED");
    }
  });
});

describe.each(transports)("error mapping over %s", (_name, transport) => {
  let client: Client<typeof EchoService>;
  beforeAll(() => {
    client = createClient(EchoService, transport());
  });

  const expected: [DomainErrorCode, Code][] = [
    ["invalid_argument", Code.InvalidArgument],
    ["unauthenticated", Code.Unauthenticated],
    ["permission_denied", Code.PermissionDenied],
    ["not_found", Code.NotFound],
    ["already_exists", Code.AlreadyExists],
    ["failed_precondition", Code.FailedPrecondition],
    ["resource_exhausted", Code.ResourceExhausted],
    ["aborted", Code.Aborted],
    ["unavailable", Code.Unavailable],
    ["deadline_exceeded", Code.DeadlineExceeded],
  ];

  it.each(expected)("DomainError %s → Connect code %i with ErrorInfo", async (domainCode, code) => {
    const error = await failure(client.fail({ code: domainCode, message: `it failed: ${domainCode}` }));
    expect(error.code).toBe(code);
    expect(error.rawMessage).toBe(`it failed: ${domainCode}`);
    const info = error.findDetails(ErrorInfoSchema);
    expect(info).toHaveLength(1);
    expect(info[0]?.reason).toBe(domainCode.toUpperCase());
    expect(info[0]?.domain).toBe("zero");
  });

  it("field violations travel as google.rpc.BadRequest", async () => {
    const error = await failure(client.fail({ code: "fields" }));
    expect(error.code).toBe(Code.InvalidArgument);
    const [badRequest] = error.findDetails(BadRequestSchema);
    expect(badRequest?.fieldViolations.map((v) => [v.field, v.description])).toEqual([
      ["email", "must be an email address"],
      ["password", "must be 12 to 128 characters"],
    ]);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INVALID_ARGUMENT");
  });

  it("an unexpected throw becomes internal without leaking its message; the cause is logged", async () => {
    const error = await failure(client.fail({ code: "bug" }));
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe("internal error");
    expect(JSON.stringify(error.details)).not.toContain("hunter2");
    expect(String(error.metadata.get("grpc-message") ?? "")).not.toContain("hunter2");
    const logged = logs.lines.find((l) => l.msg === "unexpected error in handler");
    expect(logged?.rpc).toBe("zero.testing.v1.EchoService/Fail");
    expect(JSON.stringify(logged)).toContain("hunter2");
  });

  it("errors thrown while streaming are mapped too", async () => {
    const received: number[] = [];
    const error = await failure(
      (async () => {
        for await (const res of client.echoStream({ message: "fail-at-end", count: 2 }))
          received.push(res.index);
      })(),
    );
    expect(received).toEqual([0, 1]);
    expect(error.code).toBe(Code.Aborted);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ABORTED");
  });
});

describe("startServer", () => {
  it("refuses to start without a verifier when a method needs a token", async () => {
    await expect(
      startServer({
        name: "echo",
        host: "127.0.0.1",
        port: 0,
        logger: logs.logger,
        services: [EchoService],
        routes: echoRoutes,
      }),
    ).rejects.toThrow(/WhoAmI.*need a token verifier/);
  });
});
