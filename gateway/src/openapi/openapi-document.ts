import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { getOption } from "@bufbuild/protobuf";
import { accessPolicyOf } from "@zero/kit/principal";
import { FieldBehavior, field_behavior } from "@zero/proto/google/api/field_behavior_pb";
import { Access } from "@zero/proto/zero/options/v1/access_pb";
import type { Route } from "../route-table.js";
import { createSchemaBuilder, hasScalarJson, type JsonSchema, type SchemaBuilder } from "./json-schemas.js";
import type { ProtoComments } from "./proto-comments.js";
import { Code } from "@connectrpc/connect";
import { statusName } from "../error-body.js";

// Every code but OK (an error body never carries it), in gRPC's numeric order.
const ERROR_STATUS_NAMES = Object.values(Code)
  .filter((code): code is Code => typeof code === "number")
  .map(statusName);

// OpenAPI 3.1 from the same route table the gateway serves: one operation per HTTP binding
// (additional_bindings included) of every method a client may call (PUBLIC, USER, ADMIN —
// INTERNAL and credential-only methods are not reachable, so not documented), parameters for the
// path variables and for every field the query may set, request and response schemas in the
// proto3 JSON mapping, security from the access policy, and the gateway's error shape.

export interface OpenApiOptions {
  readonly routes: readonly Route[];
  readonly comments: ProtoComments;
  readonly title?: string;
  readonly version?: string;
}

export type OpenApiDocument = { [key: string]: unknown };

const standardMethods = new Set(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]);
const documentedAccess = new Map([
  [Access.PUBLIC, "PUBLIC"],
  [Access.USER, "USER"],
  [Access.ADMIN, "ADMIN"],
]);

const errorResponses: Record<string, { status: string; description: string }> = {
  BadRequest: {
    status: "400",
    description:
      "Invalid input: malformed JSON, an unknown field or query parameter, a missing REQUIRED field, a value of the wrong type; `google.rpc.BadRequest` names each field.",
  },
  Unauthenticated: { status: "401", description: "No valid bearer token." },
  PermissionDenied: { status: "403", description: "The token does not grant this call." },
  NotFound: { status: "404", description: "No such resource (or no such route)." },
  PayloadTooLarge: { status: "413", description: "The body is larger than the gateway's limit." },
  UnsupportedMediaType: { status: "415", description: "The body is not `application/json`." },
  TooManyRequests: { status: "429", description: "Rate limited: retry after `Retry-After` seconds." },
  Unavailable: { status: "503", description: "The service is unavailable: retry shortly." },
};

export function createOpenApiDocument(opts: OpenApiOptions): OpenApiDocument {
  const schemas = createSchemaBuilder(opts.comments);
  const paths: Record<string, Record<string, unknown>> = {};
  // OpenAPI forbids two templated paths that differ only in parameter names: the first one of a
  // shape names the parameters for all.
  const pathByShape = new Map<string, string>();
  const bindingCount = new Map<string, number>();
  const customRoutes: { method: string; path: string; rpc: string }[] = [];
  const tags = new Map<string, string | undefined>();

  for (const route of opts.routes) {
    const access = documentedAccess.get(accessPolicyOf(route.method));
    if (access === undefined) continue;
    const rpc = `${route.service.typeName}/${route.method.name}`;
    const index = bindingCount.get(rpc) ?? 0;
    bindingCount.set(rpc, index + 1);
    if (!standardMethods.has(route.httpMethod)) {
      customRoutes.push({ method: route.httpMethod, path: route.template.source, rpc });
      continue;
    }

    const template = openApiPath(route, schemas);
    const shape = template.path.replace(/\{[^}]+\}/g, "{}");
    const existing = pathByShape.get(shape);
    let path = template.path;
    if (existing !== undefined) {
      const names = [...existing.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
      template.params.forEach((p, i) => (p.name = names[i] ?? p.name));
      path = existing;
    } else pathByShape.set(shape, path);

    tags.set(route.service.typeName, opts.comments.get(route.service.typeName));
    const item = (paths[path] ??= {});
    item[route.httpMethod.toLowerCase()] = operation(
      route,
      access,
      index,
      template.params,
      schemas,
      opts.comments,
    );
  }

  const descriptionLines = [
    "Zero's REST API, generated at start-up from the `google.api.http` annotations of the services' protos — the same table the gateway routes by.",
    "",
    '- JSON is proto3 JSON: lowerCamelCase names in answers (proto names are accepted too), 64-bit integers as strings, enums by name, Timestamps in RFC 3339, Durations as `"1.5s"`. Answers include fields at their zero value.',
    "- Unknown fields and query parameters are refused (400). Query parameters use the field paths of the request: `filter.author=x`, repeated `ids=1&ids=2`, maps `labels[key]=value`.",
    '- Errors: `{"error":{"code":<http>,"status":"INVALID_ARGUMENT","message":"…","details":[…]}}` with `google.rpc.BadRequest` / `google.rpc.ErrorInfo` details.',
    "- Server-streaming methods answer newline-delimited JSON, or Server-Sent Events with `Accept: text/event-stream`.",
    "- Every method is also reachable with Connect, gRPC and gRPC-Web at `/<package.Service>/<Method>`.",
  ];
  if (customRoutes.length > 0) {
    descriptionLines.push(
      "",
      "Routes with custom HTTP methods (not expressible in OpenAPI): " +
        customRoutes.map((r) => `\`${r.method} ${r.path}\` (${r.rpc})`).join(", ") +
        ".",
    );
  }

  return {
    openapi: "3.1.0",
    info: {
      title: opts.title ?? "Zero API",
      version: opts.version ?? "v1",
      description: descriptionLines.join("\n"),
    },
    servers: [{ url: "/" }],
    tags: [...tags].map(([name, description]) => ({ name, ...(description ? { description } : {}) })),
    paths,
    components: {
      schemas: { ...schemas.components(), ...errorSchemas },
      responses: Object.fromEntries(
        Object.entries(errorResponses).map(([name, r]) => [
          name,
          {
            description: r.description,
            content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
          },
        ]),
      ),
      securitySchemes: {
        bearerAuth: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "An access token from `POST /v1/auth/login`.",
        },
      },
    },
    ...(customRoutes.length > 0 ? { "x-zero-custom-method-routes": customRoutes } : {}),
  };
}

interface PathParam {
  name: string;
  schema: JsonSchema;
  description: string;
}

/**
 * `/v1/{name=shelves/*\/books/*}:move` → `/v1/shelves/{shelf}/books/{book}:move`: OpenAPI path
 * parameters are single segments, so a multi-segment variable shows its literal segments and
 * one parameter per `*`, named after the collection before it.
 */
function openApiPath(route: Route, schemas: SchemaBuilder): { path: string; params: PathParam[] } {
  const { segments, variables, verb } = route.template;
  const parts: string[] = [];
  const params: PathParam[] = [];
  const used = new Set<string>();
  const unique = (name: string): string => {
    let candidate = name;
    for (let i = 2; used.has(candidate); i++) candidate = `${name}${i}`;
    used.add(candidate);
    return candidate;
  };

  segments.forEach((segment, i) => {
    const variable = variables.find((v) => v.start <= i && i < v.end);
    if (segment.kind === "literal") {
      parts.push(segment.value);
      return;
    }
    const fieldPath = variable?.fieldPath.join(".");
    const chain = fieldPath === undefined ? undefined : route.pathFields.get(fieldPath);
    const leaf = chain?.[chain.length - 1];
    const wholeVariable = variable !== undefined && !variable.multiSegment;
    if (wholeVariable && leaf) {
      const name = unique(fieldPath!);
      const { description, ...schema } = schemas.leaf(leaf);
      params.push({
        name,
        schema,
        description: typeof description === "string" ? description : `\`${fieldPath}\``,
      });
      parts.push(`{${name}}`);
      return;
    }
    const previous = parts[parts.length - 1];
    const base =
      segment.kind === "wildcard" && previous !== undefined && !previous.startsWith("{")
        ? singular(previous)
        : (fieldPath ?? "segment");
    const name = unique(base.replace(/[^A-Za-z0-9_.]/g, "_"));
    const template = fieldPath === undefined ? undefined : variableTemplate(route, fieldPath);
    params.push({
      name,
      schema: { type: "string", pattern: "^[^/]+$" },
      description:
        segment.kind === "deep-wildcard"
          ? `\`${fieldPath ?? "path"}\`: any number of segments. Send \`/\` unencoded; an encoded \`%2F\` stays encoded.`
          : fieldPath === undefined
            ? "Any single segment."
            : `A segment of \`${fieldPath}\` (\`${template}\`).`,
    });
    parts.push(`{${name}}`);
  });
  return { path: "/" + parts.join("/") + (verb === undefined ? "" : `:${verb}`), params };
}

/** `name=shelves/*\/books/*` → `shelves/{shelf}/books/{book}`, for descriptions. */
function variableTemplate(route: Route, fieldPath: string): string {
  const variable = route.template.variables.find((v) => v.fieldPath.join(".") === fieldPath);
  if (!variable) return fieldPath;
  const parts: string[] = [];
  for (let i = variable.start; i < variable.end; i++) {
    const s = route.template.segments[i]!;
    const previous = parts[parts.length - 1];
    if (s.kind === "literal") parts.push(s.value);
    else if (s.kind === "wildcard") parts.push(`{${previous ? singular(previous) : "id"}}`);
    else parts.push("**");
  }
  return parts.join("/");
}

function singular(word: string): string {
  if (/ies$/.test(word)) return word.slice(0, -3) + "y";
  if (/ves$/.test(word)) return word.slice(0, -3) + "f";
  if (/(ss|x|ch|sh)es$/.test(word)) return word.slice(0, -2);
  if (/s$/.test(word) && !/ss$/.test(word)) return word.slice(0, -1);
  return `${word}_id`;
}

function operation(
  route: Route,
  access: string,
  bindingIndex: number,
  pathParams: readonly PathParam[],
  schemas: SchemaBuilder,
  comments: ProtoComments,
): Record<string, unknown> {
  const { method, service } = route;
  const comment = comments.get(`${service.typeName}.${method.name}`);
  const parameters = [
    ...pathParams.map((p) => ({
      name: p.name,
      in: "path",
      required: true,
      description: p.description,
      schema: p.schema,
    })),
    ...queryParameters(route, schemas),
  ];

  const hasBody = route.body !== "";
  const requestBody = hasBody ? requestBodyOf(route, schemas) : undefined;

  const responseSchema = route.responseBodyField
    ? schemas.field(route.responseBodyField)
    : schemas.message(method.output);
  const success =
    method.methodKind === "server_streaming"
      ? {
          description:
            "A stream of messages: one JSON object per line (`application/x-ndjson`), or one Server-Sent Event per message with `Accept: text/event-stream`. An error after the first message arrives as a last line/event `error` in the error shape.",
          content: {
            "application/x-ndjson": { schema: responseSchema },
            "text/event-stream": { schema: { type: "string" } },
          },
        }
      : {
          description: route.createsResource ? "Created." : "OK.",
          content: { "application/json": { schema: responseSchema } },
        };

  const protectedCall = access !== "PUBLIC";
  const errorRef = (name: string) => ({ $ref: `#/components/responses/${name}` });
  const responses: Record<string, unknown> = {
    [route.createsResource ? "201" : "200"]: success,
    "400": errorRef("BadRequest"),
    ...(protectedCall ? { "401": errorRef("Unauthenticated"), "403": errorRef("PermissionDenied") } : {}),
    "404": errorRef("NotFound"),
    ...(hasBody ? { "413": errorRef("PayloadTooLarge"), "415": errorRef("UnsupportedMediaType") } : {}),
    "429": errorRef("TooManyRequests"),
    "503": errorRef("Unavailable"),
    default: {
      description: "Any other error, in the same shape.",
      content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
    },
  };

  // Swagger UI shows a summary as plain text: the first sentence, without Markdown backticks.
  const summary = (comment?.split(/\n\s*\n|(?<=\.)\s/)[0] ?? method.name).replace(/`/g, "");
  const accessNote =
    access === "ADMIN"
      ? "\n\nNeeds a bearer token with the `admin` role."
      : access === "USER"
        ? "\n\nNeeds a bearer token."
        : "";
  return {
    operationId: `${service.name}_${method.name}${bindingIndex === 0 ? "" : `_${bindingIndex}`}`,
    summary,
    description: `${comment ?? method.name}${accessNote}\n\nRPC: \`${service.typeName}/${method.name}\``,
    tags: [service.typeName],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
    security: protectedCall ? [{ bearerAuth: [] }] : [],
    "x-zero-rpc": `${service.typeName}/${method.name}`,
    "x-zero-access": access,
  };
}

function requestBodyOf(route: Route, schemas: SchemaBuilder): Record<string, unknown> {
  let schema: JsonSchema;
  let required = true;
  if (route.body === "*") {
    const bound = new Set<DescField>();
    for (const chain of route.pathFields.values()) if (chain.length === 1) bound.add(chain[0]!);
    schema =
      bound.size === 0
        ? schemas.message(route.method.input)
        : schemas.messageWithout(route.method.input, bound);
  } else {
    const field = route.bodyField!;
    schema = schemas.field(field);
    required = getOption(field, field_behavior).includes(FieldBehavior.REQUIRED);
  }
  const maskNote = route.updateMaskField
    ? ` Without \`${route.updateMaskField.name}\`, the fields present in the body become the update mask.`
    : "";
  return {
    required,
    description: `${route.body === "*" ? "The request" : `\`${route.body}\``} as JSON.${maskNote}`,
    content: { "application/json": { schema } },
  };
}

/** Every field the query may set: not bound by the path, not in the body (none for `body: "*"`). */
function queryParameters(route: Route, schemas: SchemaBuilder): Record<string, unknown>[] {
  if (route.body === "*") return [];
  const out: Record<string, unknown>[] = [];
  const boundPaths = new Set(route.pathFields.keys());
  const visit = (message: DescMessage, prefix: string, seen: readonly string[]): void => {
    for (const field of message.fields) {
      if (prefix === "" && field === route.bodyField) continue;
      const name = prefix + field.name;
      if (boundPaths.has(name)) continue;
      const required = prefix === "" && getOption(field, field_behavior).includes(FieldBehavior.REQUIRED);
      const base = { name, in: "query", ...(required ? { required: true } : {}) };
      const described = (schema: JsonSchema) => {
        const { description, ...rest } = schema;
        return { ...base, ...(typeof description === "string" ? { description } : {}), schema: rest };
      };
      switch (field.fieldKind) {
        case "scalar":
        case "enum":
          out.push(described(schemas.leaf(field)));
          break;
        case "list":
          if (field.listKind !== "message" || hasScalarJson(field.message)) {
            out.push({ ...described(schemas.field(field)), style: "form", explode: true });
          }
          break;
        case "map":
          if (field.mapKind !== "message" || hasScalarJson(field.message)) {
            out.push({ ...described(schemas.field(field)), style: "deepObject", explode: true });
          }
          break;
        case "message":
          if (hasScalarJson(field.message)) out.push(described(schemas.field(field)));
          else if (seen.length < 4 && !seen.includes(field.message.typeName)) {
            visit(field.message, `${name}.`, [...seen, field.message.typeName]);
          }
          break;
      }
    }
  };
  visit(route.method.input, "", [route.method.input.typeName]);
  return out;
}

const errorSchemas: Record<string, JsonSchema> = {
  Error: {
    type: "object",
    description: "Every error the REST API answers, whoever raised it (the Google API error model).",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["code", "status", "message", "details"],
        properties: {
          code: { type: "integer", description: "The HTTP status.", examples: [400] },
          status: {
            type: "string",
            description: "The gRPC status name.",
            // The names the error writer sends: derived from the same table, never re-listed.
            enum: ERROR_STATUS_NAMES,
          },
          message: { type: "string", description: "What went wrong and what to do, for people." },
          details: { type: "array", items: { $ref: "#/components/schemas/ErrorDetail" } },
        },
      },
    },
  },
  ErrorDetail: {
    type: "object",
    description:
      "A `google.rpc` detail with its type URL: `BadRequest` (`fieldViolations`: `field`, `description`), `ErrorInfo` (`reason`, `domain`, `metadata`), …",
    required: ["@type"],
    properties: {
      "@type": { type: "string", examples: ["type.googleapis.com/google.rpc.BadRequest"] },
      fieldViolations: {
        type: "array",
        items: {
          type: "object",
          properties: { field: { type: "string" }, description: { type: "string" } },
        },
      },
      reason: { type: "string" },
      domain: { type: "string" },
      metadata: { type: "object", additionalProperties: { type: "string" } },
    },
    additionalProperties: true,
  },
};
