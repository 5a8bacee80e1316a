import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { publicServices } from "../public-services.js";
import { createRouteTable } from "../route-table.js";
import { firstSentence, splitErrorsSection } from "./comment-text.js";
import { requestHeaderConventions } from "./http-conventions.js";
import { createOpenApiDocument, methodComment } from "./openapi-document.js";
import { defaultProtoSourceRoot, loadProtoComments } from "./proto-comments.js";

function commentsFor(services: Parameters<typeof createRouteTable>[0]) {
  const { comments, missing } = loadProtoComments(
    new Set(services.map((s) => s.file)),
    defaultProtoSourceRoot(),
  );
  expect(missing).toEqual([]);
  return comments;
}

function documentFor(
  services: Parameters<typeof createRouteTable>[0],
  opts: { passServices?: boolean } = {},
) {
  const routes = createRouteTable(services).routes;
  return createOpenApiDocument({
    routes,
    comments: commentsFor(services),
    ...(opts.passServices ? { services } : {}),
  });
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

type Operation = Record<string, unknown> & {
  operationId: string;
  summary: string;
  "x-zero-rpc": string;
  responses: Record<string, Record<string, unknown>>;
  parameters?: Record<string, unknown>[];
  requestBody?: { content: Record<string, { schema?: Record<string, unknown> }> };
};

function operationsOf(document: Doc): (Operation & { path: string; method: string })[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ ...(op as Operation), path, method })),
  );
}

function byId(document: Doc, operationId: string): Operation {
  const op = operationsOf(document).find((o) => o.operationId === operationId);
  if (!op) throw new Error(`no operation ${operationId}`);
  return op;
}

describe("the OpenAPI document of the platform (audit of GET /openapi.json)", () => {
  const doc = documentFor([EchoService, TranscodingService]) as Doc;
  const pub = documentFor(publicServices) as Doc;
  const schemas = pub.components.schemas;
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

  it("gives a field-mask PATCH a partial body: nothing required, nested messages partial too", () => {
    const address = byId(pub, "UserService_UpdateAddress").requestBody!.content["application/json"]!;
    expect(address.schema).toMatchObject(ref("zero.users.v1.Address-Partial"));
    const partial = schemas["zero.users.v1.Address-Partial"]!;
    expect(partial["required"]).toBeUndefined();
    expect(partial["properties"]).toHaveProperty("defaultBilling");
    // The full message keeps its REQUIRED fields for creation.
    expect(schemas["zero.users.v1.Address"]!["required"]).toEqual(
      expect.arrayContaining(["recipientName", "line1", "city", "countryCode"]),
    );
    expect(
      byId(pub, "UserService_CreateAddress").requestBody!.content["application/json"]!.schema,
    ).toMatchObject(ref("zero.users.v1.Address"));
    // A mask filled from `{"marketing":{"emailOptIn":true}}` names the leaf only.
    const profile = schemas["zero.users.v1.Profile-Partial"]!["properties"] as Record<string, unknown>;
    expect(profile["marketing"]).toMatchObject(ref("zero.users.v1.MarketingPreferences-Partial"));
    // No request body of any mask PATCH demands a field.
    for (const op of operationsOf(pub).filter((o) => o.method === "patch")) {
      const mask = op.parameters?.some((p) => p["name"] === "update_mask");
      const body = op.requestBody?.content["application/json"]?.schema?.["$ref"];
      if (!mask || typeof body !== "string") continue;
      const component = schemas[body.replace("#/components/schemas/", "")]!;
      expect(component["required"], op.operationId).toBeUndefined();
    }
    const book = byId(documentFor([TranscodingService]) as Doc, "TranscodingService_UpdateBook");
    expect(book.requestBody!.content["application/json"]!.schema).toMatchObject(
      ref("zero.testing.v1.Book-Partial"),
    );
  });

  it("documents Idempotency-Key where payments honours it, with replay and key-reuse answers", () => {
    const table = requestHeaderConventions.find((c) => c.component === "IdempotencyKey")!;
    // The table in http-conventions.ts names exactly the methods whose implementation claims a key.
    const source = readFileSync(
      new URL("../../../services/payments/src/payment-service.ts", import.meta.url),
      "utf8",
    );
    const claimed = [
      ...source.matchAll(/key: idempotencyKeyOf\(ctx\.requestHeader\),\s*method: "(\w+)"/g),
    ].map((m) => `zero.payments.v1.PaymentService/${m[1]}`);
    expect(claimed.length).toBeGreaterThan(0);
    expect([...table.rpcs].sort()).toEqual([...new Set(claimed)].sort());

    expect(pub["components"]).toMatchObject({
      parameters: { IdempotencyKey: { name: "Idempotency-Key", in: "header", required: false } },
    });
    for (const op of operationsOf(pub)) {
      const documented = op.parameters?.some((p) => p["$ref"] === "#/components/parameters/IdempotencyKey");
      expect(documented ?? false, op.operationId).toBe(table.rpcs.has(op["x-zero-rpc"]));
      if (!documented) continue;
      const success = op.responses["201"] ?? op.responses["200"]!;
      expect(success["headers"]).toHaveProperty("Idempotent-Replayed");
      expect(op.responses["422"]?.["description"]).toMatch(/IDEMPOTENCY_KEY_REUSED/);
      expect(op.responses["409"]?.["description"]).toMatch(/IDEMPOTENCY_KEY_IN_USE/);
    }
    expect(byId(pub, "PaymentService_CreatePayment_2").parameters).toContainEqual({
      $ref: "#/components/parameters/IdempotencyKey",
    });
  });

  it("declares X-Request-Id on every response and the rate-limit headers on 429", () => {
    const components = pub["components"] as unknown as {
      headers: Record<string, unknown>;
      responses: Record<string, { headers: Record<string, unknown> }>;
    };
    expect(Object.keys(components.headers)).toEqual(
      expect.arrayContaining([
        "X-Request-Id",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Retry-After",
      ]),
    );
    for (const op of operationsOf(pub)) {
      for (const [status, response] of Object.entries(op.responses)) {
        const resolved =
          typeof response["$ref"] === "string"
            ? components.responses[response["$ref"].replace("#/components/responses/", "")]!
            : (response as { headers: Record<string, unknown> });
        expect(resolved.headers, `${op.operationId} ${status}`).toHaveProperty("X-Request-Id");
        if (status === "429") {
          expect(Object.keys(resolved.headers)).toEqual(
            expect.arrayContaining([
              "RateLimit-Limit",
              "RateLimit-Remaining",
              "RateLimit-Reset",
              "Retry-After",
            ]),
          );
        }
      }
    }
  });

  it("documents a google.api.HttpBody body as raw bytes of any content type", () => {
    for (const id of ["PaymentService_HandleProviderWebhook", "PaymentService_HandleProviderWebhook_1"]) {
      const op = byId(pub, id);
      expect(Object.keys(op.requestBody!.content)).toEqual(["*/*"]);
      expect(op.requestBody!.content["*/*"]!.schema).toMatchObject({ type: "string" });
      expect(JSON.stringify(op.requestBody)).not.toMatch(/HttpBody"/);
      // Any content type is taken, but a compressed body is not (Content-Encoding): 415.
      expect(op.responses["415"]).toEqual({ $ref: "#/components/responses/UnsupportedMediaType" });
      expect(op.parameters).toContainEqual({ $ref: "#/components/parameters/WebhookSignature" });
    }
  });

  it("lets a ** capture hold slashes", () => {
    const file = byId(doc, "TranscodingService_GetFile");
    const path = file.parameters!.find((p) => p["name"] === "path")!;
    expect(path["schema"]).toEqual({ type: "string" });
    expect(path["description"]).toMatch(/any number of segments/);
    // Every path parameter with a pattern is a single segment.
    for (const op of [...operationsOf(doc), ...operationsOf(pub)]) {
      for (const p of op.parameters ?? []) {
        const pattern = (p["schema"] as Record<string, unknown> | undefined)?.["pattern"];
        if (p["in"] === "path" && pattern !== undefined) {
          expect(String(p["description"]), op.operationId).not.toMatch(/any number of segments/);
        }
      }
    }
  });

  it("documents the errors a method's comment lists (public methods included)", () => {
    expect(byId(pub, "AuthService_Login").responses["401"]?.["description"]).toMatch(/UNAUTHENTICATED/);
    expect(byId(pub, "AuthService_Login").responses["403"]?.["description"]).toMatch(/deactivated/);
    expect(byId(pub, "AuthService_Login_1").responses["401"]).toBeDefined();
    expect(byId(pub, "AuthService_RefreshToken").responses["401"]?.["description"]).toMatch(
      /REFRESH_TOKEN_INVALID/,
    );
    expect(byId(pub, "AuthService_Register").responses["409"]?.["description"]).toMatch(/ALREADY_EXISTS/);
    expect(byId(pub, "PaymentService_HandleProviderWebhook").responses["401"]?.["description"]).toMatch(
      /WEBHOOK_SIGNATURE_MISSING/,
    );
    // A public method without documented errors gets no 401/403.
    expect(byId(pub, "AuthService_GetJwks").responses["401"]).toBeUndefined();
    // Moved out of the description into the responses.
    expect(byId(pub, "AuthService_Login")["description"]).not.toMatch(/Errors:/);
    // Every `Errors:` section of every proto follows the form (a typo would leave it unparsed).
    for (const [element, comment] of commentsFor(publicServices)) {
      if (!/^Errors:/m.test(comment)) continue;
      const parsed = methodComment(comment);
      expect(parsed.malformed, element).toEqual([]);
      expect(parsed.errors.length, element).toBeGreaterThan(0);
    }
  });

  it("parses errors sections: wrapped items, HTTP overrides, malformed items left in the text", () => {
    const known = (name: string) => ["UNAUTHENTICATED", "INVALID_ARGUMENT"].includes(name);
    const parsed = splitErrorsSection(
      "Does it.\n\nErrors:\n- UNAUTHENTICATED: a wrong\npassword.\n- INVALID_ARGUMENT (HTTP 422): reused.\n\nMore text.",
      known,
    );
    expect(parsed.text).toBe("Does it.\n\nMore text.");
    expect(parsed.errors).toEqual([
      { status: "UNAUTHENTICATED", httpStatus: undefined, text: "a wrong password." },
      { status: "INVALID_ARGUMENT", httpStatus: 422, text: "reused." },
    ]);
    const bad = splitErrorsSection("Does it.\n\nErrors:\n- UNAUTHENTICATD: typo.", known);
    expect(bad.malformed).toEqual(["- UNAUTHENTICATD: typo."]);
    expect(bad.text).toContain("Errors:");
  });

  it("takes examples from the operation's own message, never another's", () => {
    for (const id of ["UserService_UpdateProfile", "UserService_UpdateAddress"]) {
      const op = byId(pub, id);
      const mask = op.parameters!.find((p) => p["name"] === "update_mask")!;
      const examples = (mask["schema"] as { examples?: string[] }).examples ?? [];
      const body = op.requestBody!.content["application/json"]!.schema!["$ref"] as string;
      const properties = schemas[body.replace("#/components/schemas/", "")]!["properties"] as object;
      expect(examples.length, id).toBeGreaterThan(0);
      for (const example of examples) {
        for (const path of example.split(","))
          expect(Object.keys(properties), id).toContain(path.split(".")[0]);
      }
    }
  });

  it("gives no example that contradicts the field's documented limits", () => {
    const watch = byId(doc, "TranscodingService_WatchBooks");
    const interval = watch.parameters!.find((p) => p["name"] === "interval")!;
    // "Pause between books, e.g. `0.1s`; at most 1 s."
    expect((interval["schema"] as { examples: string[] }).examples).toEqual(["0.1s"]);
    expect(JSON.stringify(doc)).not.toContain('3600s"]');
  });

  it("summarises with the first sentence, on one line, and every RPC has one", () => {
    expect(byId(pub, "UserService_ExportMyData").summary).toBe(
      "Everything Zero holds about the caller, as one JSON document (GDPR art. 15 and 20): this service's data plus what every other service holding personal data answers.",
    );
    expect(byId(pub, "NotificationService_RetryDelivery").summary).toBe(
      "Puts a FAILED message back in the queue (e.g. after the SMTP configuration was fixed).",
    );
    for (const op of [...operationsOf(pub), ...operationsOf(doc)]) {
      expect(op.summary, op.operationId).not.toMatch(/\n|\s{2}/);
      const method = op["x-zero-rpc"].split("/")[1];
      expect(op.summary, `${op.operationId} has no proto comment`).not.toBe(method);
    }
    expect(firstSentence("Ends it, i.e. stops. Then more.")).toBe("Ends it, i.e. stops.");
    expect(firstSentence("A (b. c) d. E.")).toBe("A (b. c) d.");
    expect(firstSentence("Uses `a. b` here. Next.")).toBe("Uses `a. b` here.");
    expect(firstSentence("Per art. 7 vs. art. 8, etc. and more.\nTwo.")).toBe(
      "Per art. 7 vs. art. 8, etc. and more.",
    );
    expect(firstSentence("One sentence\nover   two lines. Two.\n\nNext paragraph.")).toBe(
      "One sentence over two lines.",
    );
  });

  it("orders tags by the services given, diagnostic services last; by name without them", () => {
    const names = (d: unknown) => (d as { tags: { name: string }[] }).tags.map((t) => t.name);
    const given = names(documentFor(publicServices, { passServices: true }));
    const expected = publicServices.map((s) => s.typeName);
    expect(given).toEqual([
      ...expected.filter((n) => !n.startsWith("zero.testing.")),
      ...expected.filter((n) => n.startsWith("zero.testing.")),
    ]);
    const byName = names(pub);
    const platform = byName.filter((n) => !n.startsWith("zero.testing."));
    expect(platform).toEqual([...platform].sort());
    expect(byName.slice(-2)).toEqual(["zero.testing.v1.EchoService", "zero.testing.v1.TranscodingService"]);
    expect(names(documentFor([TranscodingService, EchoService]))).toEqual([
      "zero.testing.v1.EchoService",
      "zero.testing.v1.TranscodingService",
    ]);
  });
});
