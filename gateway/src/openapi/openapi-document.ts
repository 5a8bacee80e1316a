import type { DescField, DescMessage, DescService } from "@bufbuild/protobuf";
import { getOption } from "@bufbuild/protobuf";
import { accessPolicyOf } from "@zero/kit/principal";
import { FieldBehavior, field_behavior } from "@zero/proto/google/api/field_behavior_pb";
import { Access } from "@zero/proto/zero/options/v1/access_pb";
import type { Route } from "../route-table.js";
import { createSchemaBuilder, hasScalarJson, type JsonSchema, type SchemaBuilder } from "./json-schemas.js";
import type { ProtoComments } from "./proto-comments.js";
import { Code } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { statusName } from "../error-body.js";
import { firstSentence, splitErrorsSection, type DocumentedError } from "./comment-text.js";
import {
  rateLimitHeaders,
  requestHeaderConventions,
  responseHeaders,
  type ResponseHeaderName,
} from "./http-conventions.js";

// Every code but OK (an error body never carries it), in gRPC's numeric order.
const ERROR_CODES = Object.values(Code).filter((code): code is Code => typeof code === "number");
const ERROR_STATUS_NAMES = ERROR_CODES.map(statusName);
const CODE_BY_STATUS_NAME = new Map(ERROR_CODES.map((code) => [statusName(code), code]));

/** The HTTP status of a documented error: its `(HTTP nnn)` override, else the gRPC → HTTP table. */
function httpStatusOf(error: DocumentedError): string {
  return String(error.httpStatus ?? codeToHttpStatus(CODE_BY_STATUS_NAME.get(error.status)!));
}

/** A method comment split into its text and its `Errors:` section (comment-text.ts). */
export function methodComment(comment: string): ReturnType<typeof splitErrorsSection> {
  return splitErrorsSection(comment, (name) => CODE_BY_STATUS_NAME.has(name));
}

const HTTP_BODY = "google.api.HttpBody";

// OpenAPI 3.1 from the same route table the gateway serves: one operation per HTTP binding
// (additional_bindings included) of every method a client may call (PUBLIC, USER, ADMIN —
// INTERNAL and credential-only methods are not reachable, so not documented), parameters for the
// path variables and for every field the query may set, request and response schemas in the
// proto3 JSON mapping, security from the access policy, and the gateway's error shape.

export interface OpenApiOptions {
  readonly routes: readonly Route[];
  readonly comments: ProtoComments;
  /**
   * The services in the order the gateway was given them: the tags (Swagger UI's sections) follow
   * it. Without it they are sorted by name. The diagnostic `zero.testing.*` services come last
   * either way.
   */
  readonly services?: readonly DescService[];
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

const errorResponses: Record<
  string,
  { status: string; description: string; headers?: readonly ResponseHeaderName[] }
> = {
  BadRequest: {
    status: "400",
    description:
      "Invalid input: malformed JSON, an unknown field or query parameter, a missing REQUIRED field, a value of the wrong type; `google.rpc.BadRequest` names each field.",
  },
  Unauthenticated: { status: "401", description: "No valid bearer token." },
  PermissionDenied: { status: "403", description: "The token does not grant this call." },
  NotFound: { status: "404", description: "No such resource (or no such route)." },
  PayloadTooLarge: { status: "413", description: "The body is larger than the gateway's limit." },
  UnsupportedMediaType: {
    status: "415",
    description:
      "The body is not `application/json` (where JSON is taken), or is compressed (`Content-Encoding`).",
  },
  TooManyRequests: {
    status: "429",
    description:
      "Rate limited: by the gateway (retry after `Retry-After` seconds), or by a service's own throttle (the message says when to retry).",
    headers: rateLimitHeaders,
  },
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
  const tagServices = new Set<DescService>();

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

    tagServices.add(route.service);
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
    "- Every answer carries `X-Request-Id`. With rate limiting on, answers carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`; a refusal is 429 with `Retry-After`.",
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
    tags: orderTags(tagServices, opts.services).map((service) => {
      const description = opts.comments.get(service.typeName);
      return { name: service.typeName, ...(description ? { description } : {}) };
    }),
    paths,
    components: {
      schemas: { ...schemas.components(), ...errorSchemas },
      responses: Object.fromEntries(
        Object.entries(errorResponses).map(([name, r]) => [name, errorResponse(r.description, r.headers)]),
      ),
      parameters: Object.fromEntries(requestHeaderConventions.map((c) => [c.component, c.parameter])),
      headers: responseHeaders,
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

/**
 * Tags in a fixed order, not the route table's (which sorts routes by path specificity and would
 * put a diagnostic service between two of the platform's): the services' order given to the
 * gateway, else by name; `zero.testing.*` last.
 */
function orderTags(used: ReadonlySet<DescService>, given: readonly DescService[] | undefined): DescService[] {
  const rank = (s: DescService) => {
    const at = given?.indexOf(s) ?? -1;
    return at < 0 ? Number.MAX_SAFE_INTEGER : at;
  };
  const diagnostic = (s: DescService) => (s.typeName.startsWith("zero.testing.") ? 1 : 0);
  return [...used].sort(
    (a, b) =>
      diagnostic(a) - diagnostic(b) ||
      rank(a) - rank(b) ||
      (a.typeName < b.typeName ? -1 : a.typeName > b.typeName ? 1 : 0),
  );
}

const headerRefs = (names: readonly ResponseHeaderName[]): Record<string, unknown> =>
  Object.fromEntries(
    ["X-Request-Id", ...names].map((name) => [name, { $ref: `#/components/headers/${name}` }]),
  );

function errorResponse(
  description: string,
  headers: readonly ResponseHeaderName[] = [],
): Record<string, unknown> {
  return {
    description,
    headers: headerRefs(headers),
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
}

/** The body binds to a `google.api.HttpBody`: the gateway passes the raw bytes, any content type. */
function takesRawBody(route: Route): boolean {
  if (route.body === "*") return route.method.input.typeName === HTTP_BODY;
  const field = route.bodyField;
  return field?.fieldKind === "message" && field.message.typeName === HTTP_BODY;
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
    if (segment.kind === "deep-wildcard") {
      // `**` spans segments: no pattern may forbid `/` (Swagger UI would refuse `docs/a.txt`).
      const shape = template === undefined || template === "**" ? "" : ` (\`${template}\`)`;
      params.push({
        name,
        schema: { type: "string" },
        description: `\`${fieldPath ?? "path"}\`${shape}: the rest of the path, any number of segments separated by \`/\` (\`docs/a.txt\`). Send each \`/\` as it is: an encoded \`%2F\` stays encoded, as part of one segment (Swagger UI encodes \`/\` in path parameters, so try this one with curl).`,
      });
    } else {
      params.push({
        name,
        schema: { type: "string", pattern: "^[^/]+$" },
        description:
          fieldPath === undefined
            ? "Any single segment."
            : `A segment of \`${fieldPath}\` (\`${template}\`).`,
      });
    }
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
  const rpc = `${service.typeName}/${method.name}`;
  const raw = comments.get(`${service.typeName}.${method.name}`);
  const comment = raw === undefined ? undefined : methodComment(raw);
  const conventions = requestHeaderConventions.filter((c) => c.rpcs.has(rpc));
  const parameters = [
    ...pathParams.map((p) => ({
      name: p.name,
      in: "path",
      required: true,
      description: p.description,
      schema: p.schema,
    })),
    ...queryParameters(route, schemas),
    ...conventions.map((c) => ({ $ref: `#/components/parameters/${c.component}` })),
  ];

  const hasBody = route.body !== "";
  const rawBody = hasBody && takesRawBody(route);
  const requestBody = hasBody ? requestBodyOf(route, schemas, rawBody) : undefined;

  const responseSchema = route.responseBodyField
    ? schemas.field(route.responseBodyField)
    : schemas.message(method.output);
  const successHeaders = headerRefs(conventions.flatMap((c) => c.successHeaders));
  const success =
    method.methodKind === "server_streaming"
      ? {
          description:
            "A stream of messages: one JSON object per line (`application/x-ndjson`), or one Server-Sent Event per message with `Accept: text/event-stream`. An error after the first message arrives as a last line/event `error` in the error shape.",
          headers: successHeaders,
          content: {
            "application/x-ndjson": { schema: responseSchema },
            "text/event-stream": { schema: { type: "string" } },
          },
        }
      : {
          description: route.createsResource ? "Created." : "OK.",
          headers: successHeaders,
          content: { "application/json": { schema: responseSchema } },
        };

  const protectedCall = access !== "PUBLIC";
  const errorRef = (name: string) => ({ $ref: `#/components/responses/${name}` });
  const generic: string[] = [
    "BadRequest",
    ...(protectedCall ? ["Unauthenticated", "PermissionDenied"] : []),
    "NotFound",
    // A raw body is taken with any content type, but not compressed: 415 either way.
    ...(hasBody ? ["PayloadTooLarge", "UnsupportedMediaType"] : []),
    "TooManyRequests",
    "Unavailable",
  ];
  const responses: Record<string, unknown> = {
    [route.createsResource ? "201" : "200"]: success,
    ...Object.fromEntries(generic.map((name) => [errorResponses[name]!.status, errorRef(name)])),
    default: errorResponse("Any other error, in the same shape."),
  };

  // The errors this method documents (its comment's `Errors:` section, its request headers'):
  // each status gets its own response listing them, after the generic description when the
  // status has one here.
  const documented = new Map<string, DocumentedError[]>();
  for (const error of [...conventions.flatMap((c) => c.errors), ...(comment?.errors ?? [])]) {
    const status = httpStatusOf(error);
    documented.set(status, [...(documented.get(status) ?? []), error]);
  }
  for (const [status, errors] of documented) {
    const base = generic.map((name) => errorResponses[name]!).find((r) => r.status === status);
    const list = errors.map((e) => `- \`${e.status}\`: ${e.text}`).join("\n");
    responses[status] = errorResponse(
      base ? `${base.description}\n\n${list}` : list,
      base?.headers ?? (status === "429" ? rateLimitHeaders : []),
    );
  }

  // Swagger UI shows a summary as plain text beside the path: the first sentence, on one line,
  // without Markdown backticks.
  const summary = comment ? firstSentence(comment.text).replace(/`/g, "") : method.name;
  const accessNote =
    access === "ADMIN"
      ? "\n\nNeeds a bearer token with the `admin` role."
      : access === "USER"
        ? "\n\nNeeds a bearer token."
        : "";
  return {
    operationId: `${service.name}_${method.name}${bindingIndex === 0 ? "" : `_${bindingIndex}`}`,
    summary: summary === "" ? method.name : summary,
    description: `${comment?.text ?? method.name}${accessNote}\n\nRPC: \`${rpc}\``,
    tags: [service.typeName],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
    security: protectedCall ? [{ bearerAuth: [] }] : [],
    "x-zero-rpc": rpc,
    "x-zero-access": access,
  };
}

function requestBodyOf(route: Route, schemas: SchemaBuilder, rawBody: boolean): Record<string, unknown> {
  const field = route.bodyField;
  const required =
    route.body === "*" || field === undefined
      ? true
      : getOption(field, field_behavior).includes(FieldBehavior.REQUIRED);
  const what = route.body === "*" ? "The request" : `\`${route.body}\``;
  if (rawBody) {
    // The gateway hands the service the bytes as they came, with their Content-Type, whatever it
    // is (rest-handler.ts): not HttpBody's JSON form. OpenAPI 3.1 has no schema for "any bytes";
    // `*/*` with a string schema is what Swagger UI offers a free-text body for (an empty media
    // type object, the spec's binary form, shows no input at all).
    return {
      required,
      description: `${what}: the raw request body, any content type, passed to the service byte for byte (a \`google.api.HttpBody\`).`,
      content: { "*/*": { schema: { type: "string", description: "The raw bytes of the body." } } },
    };
  }
  let schema: JsonSchema;
  if (route.body === "*") {
    const bound = new Set<DescField>();
    for (const chain of route.pathFields.values()) if (chain.length === 1) bound.add(chain[0]!);
    schema =
      bound.size === 0
        ? schemas.message(route.method.input)
        : schemas.messageWithout(route.method.input, bound);
  } else {
    // A field-mask PATCH takes a partial message (json-schemas.ts partialMessage).
    schema = schemas.field(field!, { partial: route.updateMaskField !== undefined });
  }
  const maskNote = route.updateMaskField
    ? ` Without \`${route.updateMaskField.name}\`, the fields present in the body become the update mask, and only the REQUIRED fields the mask names must be present: send just the fields to change.`
    : "";
  return {
    required,
    description: `${what} as JSON.${maskNote}`,
    content: { "application/json": { schema } },
  };
}

/**
 * An update mask's example: paths of the message the PATCH updates (never another message's), the
 * first two fields a client may set and the path does not bind.
 */
function updateMaskExample(route: Route): string | undefined {
  const body = route.bodyField;
  if (body?.fieldKind !== "message") return undefined;
  const bound = new Set(route.pathFields.keys());
  const paths = body.message.fields
    .filter((f) => !bound.has(`${body.name}.${f.name}`))
    .filter((f) => !getOption(f, field_behavior).includes(FieldBehavior.OUTPUT_ONLY))
    .slice(0, 2)
    .map((f) => f.jsonName);
  return paths.length === 0 ? undefined : paths.join(",");
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
        if (field === route.updateMaskField && rest["examples"] === undefined) {
          const example = updateMaskExample(route);
          if (example !== undefined) rest["examples"] = [example];
        }
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
