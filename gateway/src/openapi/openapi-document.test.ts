import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { publicServices } from "../public-services.js";
import { createRouteTable } from "../route-table.js";
import { createOpenApiDocument } from "./openapi-document.js";
import { defaultProtoSourceRoot, loadProtoComments } from "./proto-comments.js";

function documentFor(services: Parameters<typeof createRouteTable>[0]) {
  const routes = createRouteTable(services).routes;
  const { comments, missing } = loadProtoComments(
    new Set(services.map((s) => s.file)),
    defaultProtoSourceRoot(),
  );
  expect(missing).toEqual([]);
  return createOpenApiDocument({ routes, comments });
}

type Doc = {
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, Record<string, unknown>> };
  [key: string]: unknown;
};

async function expectValid(document: unknown): Promise<void> {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(document) as Parameters<Validator["validate"]>[0]);
  expect(result.errors ?? []).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe("3.1");
  // Every $ref resolves.
  expect(() => validator.resolveRefs()).not.toThrow();
}

describe("the OpenAPI document", () => {
  const doc = documentFor([EchoService, TranscodingService]) as Doc;

  it("validates as OpenAPI 3.1 (conformance services and every public service)", async () => {
    await expectValid(doc);
    await expectValid(documentFor(publicServices));
  });

  it("has a path per binding, multi-segment variables spelled out, custom verbs kept", () => {
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/echo",
        "/v1/transcoding/shelves/{shelf.id}",
        "/v1/transcoding/shelves/{shelf}/books/{book}",
        "/v1/transcoding/books/{name}",
        "/v1/transcoding/shelves/{shelf}/books",
        "/v1/transcoding/shelves/{shelf}/books/{book}:move",
        "/v1/transcoding/files/{path}",
        "/v1/transcoding/values",
        "/v1/transcoding/books:watch",
      ]),
    );
    expect(Object.keys(doc.paths["/v1/transcoding/shelves/{shelf}/books/{book}"]!).sort()).toEqual([
      "delete",
      "get",
      "patch",
    ]);
    // additional_bindings: both bindings of GetBook, distinct operation ids.
    expect(doc.paths["/v1/transcoding/books/{name}"]!["get"]!["operationId"]).toBe(
      "TranscodingService_GetBook_1",
    );
    // PURGE has no place in OpenAPI: listed aside.
    expect(doc["x-zero-custom-method-routes"]).toEqual([
      {
        method: "PURGE",
        path: "/v1/transcoding/shelves/{shelf_id}",
        rpc: "zero.testing.v1.TranscodingService/PurgeShelf",
      },
    ]);
  });

  it("leaves out methods no client can call", () => {
    const rpcs = Object.values(doc.paths).flatMap((item) =>
      Object.values(item).map((op) => op["x-zero-rpc"]),
    );
    expect(rpcs).not.toContain("zero.testing.v1.EchoService/InternalEcho");
    expect(rpcs).not.toContain("zero.testing.v1.EchoService/Undecided");
    expect(rpcs).toContain("zero.testing.v1.EchoService/AdminEcho");
  });

  it("takes security from the access policy", () => {
    expect(doc.paths["/v1/echo"]!["post"]!["security"]).toEqual([]);
    expect(doc.paths["/v1/echo/whoami"]!["get"]!["security"]).toEqual([{ bearerAuth: [] }]);
    const admin = doc.paths["/v1/echo/admin"]!["post"]!;
    expect(admin["security"]).toEqual([{ bearerAuth: [] }]);
    expect(admin["description"]).toMatch(/admin/);
    expect(Object.keys(admin["responses"] as object)).toEqual(expect.arrayContaining(["401", "403"]));
  });

  it("documents path and query parameters: nested, repeated, enums, maps, well-known types", () => {
    const list = doc.paths["/v1/transcoding/shelves/{shelf}/books"]!["get"]!;
    const params = list["parameters"] as {
      name: string;
      in: string;
      schema: Record<string, unknown>;
      style?: string;
    }[];
    const byName = Object.fromEntries(params.map((p) => [`${p.in}:${p.name}`, p]));
    expect(byName["path:shelf"]?.schema).toEqual({ type: "string", pattern: "^[^/]+$" });
    expect(byName["query:page_size"]?.schema).toMatchObject({ type: "integer", format: "int32" });
    expect(byName["query:genre"]?.schema).toEqual({ $ref: "#/components/schemas/zero.testing.v1.Genre" });
    expect(byName["query:tags"]).toMatchObject({
      style: "form",
      schema: { type: "array", items: { type: "string" } },
    });
    expect(byName["query:ids"]?.schema).toMatchObject({
      type: "array",
      items: { type: "string", format: "int64" },
    });
    expect(byName["query:filter.author"]).toBeDefined();
    expect(byName["query:filter.shelf.id"]).toBeDefined();
    expect(byName["query:labels"]).toMatchObject({ style: "deepObject", schema: { type: "object" } });
    expect(byName["query:after"]?.schema).toMatchObject({ type: "string", format: "date-time" });
    expect(byName["query:min_pages"]?.schema).toMatchObject({ type: ["integer", "null"] });
    expect(byName["query:parent"]).toBeUndefined();
    // Descriptions come from the proto comments.
    expect(byName["query:page_size"]).toMatchObject({ description: "Page size; at most 100." });
  });

  it("describes messages in the proto3 JSON mapping with field_behavior and oneofs", () => {
    const book = doc.components.schemas["zero.testing.v1.Book"]!;
    const properties = book["properties"] as Record<string, Record<string, unknown>>;
    expect(book["required"]).toEqual(["title"]);
    expect(properties["createTime"]).toMatchObject({ type: "string", format: "date-time", readOnly: true });
    expect(properties["pages"]).toMatchObject({ type: "string", format: "int64" });
    expect(properties["publishTime"]).toMatchObject({ format: "date-time" });
    expect(properties["labels"]).toMatchObject({ type: "object", additionalProperties: { type: "string" } });
    expect(properties["genre"]).toMatchObject({ $ref: "#/components/schemas/zero.testing.v1.Genre" });
    expect(book["allOf"]).toEqual([
      {
        oneOf: [
          { required: ["isbn"] },
          { required: ["catalogueNumber"] },
          { not: { anyOf: [{ required: ["isbn"] }, { required: ["catalogueNumber"] }] } },
        ],
      },
    ]);
    expect(book["description"]).toMatch(/^A book on a shelf\./);
    expect(doc.components.schemas["zero.testing.v1.Genre"]).toMatchObject({
      type: "string",
      enum: ["GENRE_UNSPECIFIED", "GENRE_FICTION", "GENRE_SCIENCE"],
    });
    const values = doc.components.schemas["zero.testing.v1.EchoValuesRequest"]!["properties"] as Record<
      string,
      Record<string, unknown>
    >;
    expect(values["duration"]).toMatchObject({ type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" });
    expect(values["fieldMask"]).toMatchObject({ type: "string" });
    expect(values["int64Value"]).toMatchObject({ type: ["string", "null"], format: "int64" });
    expect(values["bytes"]).toMatchObject({ type: "string", contentEncoding: "base64" });
    expect(values["counts"]).toMatchObject({ propertyNames: { pattern: "^-?[0-9]+$" } });
    expect(values["struct"]).toMatchObject({ type: "object" });
  });

  it("shapes request bodies and answers by the HTTP rule", () => {
    const create = doc.paths["/v1/transcoding/shelves/{shelf}/books"]!["post"]!;
    expect(create["requestBody"]).toMatchObject({
      required: true,
      content: { "application/json": { schema: { $ref: "#/components/schemas/zero.testing.v1.Book" } } },
    });
    expect(Object.keys(create["responses"] as object)).toContain("201");
    // body "*" with a path-bound field: the body schema leaves it out.
    const move = doc.paths["/v1/transcoding/shelves/{shelf}/books/{book}:move"]!["post"]!;
    const moveSchema = (
      move["requestBody"] as { content: { "application/json": { schema: { properties: object } } } }
    ).content["application/json"].schema;
    expect(Object.keys(moveSchema.properties)).toEqual(["destination", "note"]);
    // response_body: the answer is the field.
    const shelf = doc.paths["/v1/transcoding/shelves/{shelf.id}"]!["get"]!;
    expect(shelf["responses"]).toMatchObject({
      "200": {
        content: { "application/json": { schema: { $ref: "#/components/schemas/zero.testing.v1.Shelf" } } },
      },
    });
    // Server streaming: NDJSON and SSE.
    const watch = doc.paths["/v1/transcoding/books:watch"]!["get"]!;
    expect(Object.keys((watch["responses"] as { "200": { content: object } })["200"].content)).toEqual([
      "application/x-ndjson",
      "text/event-stream",
    ]);
    // PATCH explains the mask filling.
    const patch = doc.paths["/v1/transcoding/shelves/{shelf}/books/{book}"]!["patch"]!;
    expect((patch["requestBody"] as { description: string }).description).toMatch(/update mask/);
  });

  it("documents errors in the gateway's shape", () => {
    const error = doc.components.schemas["Error"]!;
    expect(error).toMatchObject({ required: ["error"] });
    expect(doc.paths["/v1/echo"]!["post"]!["responses"]).toMatchObject({
      "400": { $ref: "#/components/responses/BadRequest" },
      "415": { $ref: "#/components/responses/UnsupportedMediaType" },
      default: { content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    });
  });
});
