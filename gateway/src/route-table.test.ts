import { create, setExtension } from "@bufbuild/protobuf";
import type { DescMethod, DescService, MessageInitShape } from "@bufbuild/protobuf";
import { MethodOptionsSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { http } from "@zero/proto/google/api/annotations_pb";
import { HttpRuleSchema } from "@zero/proto/google/api/http_pb";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { PathDecodeError } from "./path-template.js";
import { RouteTableError, createRouteTable } from "./route-table.js";

function found(table: ReturnType<typeof createRouteTable>, method: string, path: string) {
  const result = table.lookup(method, path);
  if (result.kind !== "found") throw new Error(`expected a route for ${method} ${path}, got ${result.kind}`);
  return {
    rpc: result.route.method.name,
    bindings: Object.fromEntries(result.bindings),
    route: result.route,
  };
}

describe("createRouteTable from Zero's descriptors", () => {
  const table = createRouteTable([AuthService, EchoService]);

  it("has one route per binding, additional_bindings included", () => {
    const list = table.routes.map((r) => `${r.httpMethod} ${r.template.source} -> ${r.method.name}`);
    expect(list).toEqual(
      expect.arrayContaining([
        "POST /v1/auth/register -> Register",
        "POST /auth/register -> Register",
        "POST /v1/auth/login -> Login",
        "POST /auth/login -> Login",
        "GET /v1/auth/jwks -> GetJwks",
        "GET /.well-known/jwks.json -> GetJwks",
        "POST /v1/echo -> Echo",
        "GET /v1/echo/whoami -> WhoAmI",
        "GET /v1/echo/stream -> EchoStream",
      ]),
    );
    const echoRoutes = table.routes.filter((r) => r.service === EchoService);
    expect(echoRoutes).toHaveLength(7);
  });

  it("resolves the legacy routes to the same RPC", () => {
    expect(found(table, "POST", "/auth/register").rpc).toBe("Register");
    expect(found(table, "POST", "/v1/auth/register").rpc).toBe("Register");
    expect(found(table, "GET", "/.well-known/jwks.json").rpc).toBe("GetJwks");
  });

  it("carries body, creates_resource and the service", () => {
    const register = found(table, "POST", "/v1/auth/register").route;
    expect(register.body).toBe("*");
    expect(register.createsResource).toBe(true);
    expect(register.service.typeName).toBe("zero.auth.v1.AuthService");
    const login = found(table, "POST", "/v1/auth/login").route;
    expect(login.createsResource).toBe(false);
    expect(found(table, "GET", "/v1/auth/jwks").route.body).toBe("");
  });

  it("answers 405 with the allowed methods for a known path", () => {
    expect(table.lookup("GET", "/v1/echo")).toEqual({ kind: "method-not-allowed", allow: ["POST"] });
    expect(table.lookup("DELETE", "/auth/login")).toEqual({ kind: "method-not-allowed", allow: ["POST"] });
  });

  it("answers not-found for unknown paths", () => {
    expect(table.lookup("GET", "/v1/nope")).toEqual({ kind: "not-found" });
    expect(table.lookup("POST", "/v1/echo/")).toEqual({ kind: "not-found" });
    expect(table.lookup("GET", "")).toEqual({ kind: "not-found" });
  });
});

describe("createRouteTable with every HttpRule form (zero.testing.v1.TranscodingService)", () => {
  const table = createRouteTable([TranscodingService]);
  const t = "/v1/transcoding";

  it("binds multi-segment, nested, ** and verb templates, and additional_bindings", () => {
    expect(found(table, "GET", `${t}/shelves/1/books/2`)).toMatchObject({
      rpc: "GetBook",
      bindings: { name: "shelves/1/books/2" },
    });
    expect(found(table, "GET", `${t}/books/2`)).toMatchObject({ rpc: "GetBook", bindings: { name: "2" } });
    expect(found(table, "GET", `${t}/shelves/1/books`)).toMatchObject({
      rpc: "ListBooks",
      bindings: { parent: "shelves/1" },
    });
    expect(found(table, "PATCH", `${t}/shelves/1/books/2`)).toMatchObject({
      rpc: "UpdateBook",
      bindings: { "book.name": "shelves/1/books/2" },
    });
    expect(found(table, "DELETE", `${t}/shelves/1/books/2`)).toMatchObject({ rpc: "DeleteBook" });
    expect(found(table, "POST", `${t}/shelves/1/books/2:move`)).toMatchObject({ rpc: "MoveBook" });
    expect(found(table, "GET", `${t}/files/a/b/c`)).toMatchObject({
      rpc: "GetFile",
      bindings: { path: "a/b/c" },
    });
    expect(found(table, "GET", `${t}/files`)).toMatchObject({ rpc: "GetFile", bindings: { path: "" } });
    expect(found(table, "GET", `${t}/shelves/9`)).toMatchObject({
      rpc: "GetShelf",
      bindings: { "shelf.id": "9" },
    });
    expect(found(table, "PURGE", `${t}/shelves/9`)).toMatchObject({
      rpc: "PurgeShelf",
      bindings: { shelf_id: "9" },
    });
    expect(found(table, "GET", `${t}/books:watch`)).toMatchObject({ rpc: "WatchBooks" });
    expect(found(table, "POST", `${t}/values`)).toMatchObject({ rpc: "EchoValues" });
    expect(found(table, "GET", `${t}/values`)).toMatchObject({ rpc: "EchoValues" });
  });

  it("resolves path fields, body field, response_body and the update mask", () => {
    const update = found(table, "PATCH", `${t}/shelves/1/books/2`).route;
    expect(update.pathFields.get("book.name")?.map((f) => f.name)).toEqual(["book", "name"]);
    expect(update.bodyField?.name).toBe("book");
    expect(update.updateMaskField?.name).toBe("update_mask");
    const shelf = found(table, "GET", `${t}/shelves/9`).route;
    expect(shelf.responseBodyField?.name).toBe("shelf");
    expect(shelf.updateMaskField).toBeUndefined();
    expect(found(table, "POST", `${t}/shelves/1/books`).route.createsResource).toBe(true);
    // A FieldMask in a body * request is just a field: only PATCH + body field fills it.
    expect(found(table, "POST", `${t}/values`).route.updateMaskField).toBeUndefined();
  });

  it("lists every method bound to a path in Allow", () => {
    expect(table.lookup("PUT", `${t}/shelves/1/books/2`)).toEqual({
      kind: "method-not-allowed",
      allow: ["DELETE", "GET", "HEAD", "PATCH"],
    });
    expect(table.lookup("PUT", `${t}/shelves/1`)).toEqual({
      kind: "method-not-allowed",
      allow: ["GET", "HEAD", "PURGE"],
    });
  });

  it("serves HEAD with the GET route (RFC 9110: GET without the body)", () => {
    expect(found(table, "HEAD", `${t}/shelves/1`).route).toBe(found(table, "GET", `${t}/shelves/1`).route);
    expect(table.lookup("HEAD", `${t}/values:unknown`)).toEqual({ kind: "not-found" });
  });

  it("prefers the more specific template", () => {
    // `/shelves/{shelf.id}` and `/books/{name}` never clash with the multi-segment GetBook.
    expect(found(table, "GET", `${t}/shelves/1/books/2`).rpc).toBe("GetBook");
  });

  it("throws PathDecodeError for malformed escapes in a matching path", () => {
    expect(() => table.lookup("GET", `${t}/books/%ZZ`)).toThrow(PathDecodeError);
  });
});

describe("createRouteTable rejects broken annotations at start-up", () => {
  // Reuse a real method descriptor with different options, so the test needs no new proto.
  function serviceWithRule(rule: MessageInitShape<typeof HttpRuleSchema>): DescService {
    const method = EchoService.method.echo;
    const options = create(MethodOptionsSchema);
    setExtension(options, http, create(HttpRuleSchema, rule));
    const clone: DescMethod = { ...method, proto: { ...method.proto, options } };
    return { ...EchoService, methods: [clone] };
  }

  it.each([
    [
      { pattern: { case: "post" as const, value: "/v1/{missing}" }, body: "*" },
      'path variable "missing" is not a field',
    ],
    [{ pattern: { case: "post" as const, value: "/v1/echo" }, body: "nope" }, 'body "nope" is not a field'],
    [{ pattern: { case: "post" as const, value: "/v1/echo" }, responseBody: "nope" }, 'response_body "nope"'],
    [{ pattern: { case: "post" as const, value: "v1/echo" } }, "must start with '/'"],
    [{ body: "*" }, "has no pattern"],
    [
      {
        pattern: { case: "post" as const, value: "/v1/echo" },
        additionalBindings: [{ pattern: { case: "post" as const, value: "/v1/echo" } }],
      },
      "is already bound",
    ],
  ])("rejects %j", (rule, reason) => {
    expect(() => createRouteTable([serviceWithRule(rule)])).toThrow(RouteTableError);
    expect(() => createRouteTable([serviceWithRule(rule)])).toThrow(reason);
  });
});
