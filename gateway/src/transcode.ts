import { create, fromJson, mergeFromJson, toJson } from "@bufbuild/protobuf";
import type { DescField, DescMessage, JsonObject, JsonValue, Message, Registry } from "@bufbuild/protobuf";
import { isFieldError, protoCamelCase, reflect } from "@bufbuild/protobuf/reflect";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { ScalarType } from "@bufbuild/protobuf";
import { DomainError, invalidArguments, type FieldViolation } from "@zero/kit/errors";
import {
  DYNAMIC_TYPES,
  STRING_FORMS,
  WRAPPER_SCALAR,
  fieldValueViolation,
  mapKeyViolation,
  scalarViolation,
  wellKnownStringViolation,
} from "./json-value-checks.js";
import type { PathBindings } from "./path-template.js";
import type { Route } from "./route-table.js";

// REST → RPC and back, following the HttpRule rules (third_party/proto/google/api/http.proto):
// the body (all of it for `body: "*"`, one top-level field otherwise) is proto3 JSON; path
// variables and query parameters are strings converted per the target field's type. Everything is
// expressed as proto3 JSON and handed to protobuf-es, so the accepted forms (camelCase and proto
// names, int64 as strings, enum names, Timestamp/Duration/FieldMask/wrapper JSON) are exactly the
// proto3 JSON ones.

export interface RestRequest {
  readonly bindings: PathBindings;
  readonly query: URLSearchParams;
  /** The parsed JSON body, or undefined when the request had none. */
  readonly body: JsonValue | undefined;
}

/** Bounds our own walks over untrusted JSON (the body's depth is already limited when read). */
const recursionLimit = 64;
/**
 * protobuf-es's limit counts messages, and each level of a JSON array or object inside a
 * `google.protobuf.Value` is two of them (Value → ListValue/Struct): room for a body nested as
 * deep as the gateway accepts.
 */
const messageRecursionLimit = 2 * recursionLimit + 8;

/**
 * Builds the request message for a route. Throws DomainError `invalid_argument` whose field
 * violations name every offending field or parameter (one 400 lists them all).
 */
export function transcodeRequest(route: Route, request: RestRequest, registry?: Registry): Message {
  const input = route.method.input;
  const readOptions = { ignoreUnknownFields: false, recursionLimit: messageRecursionLimit, registry };
  const violations: FieldViolation[] = [];

  // 1. The body.
  let base: JsonValue = {};
  if (route.body === "*") {
    const body = request.body ?? {};
    if (!isJsonObject(body)) throw notAnObject();
    collectFieldViolations(input, body, "", violations, 0);
    base = body;
  } else if (route.bodyField) {
    const field = route.bodyField;
    if (request.body !== undefined) {
      if (field.fieldKind === "message" && !hasSpecialJson(field.message)) {
        if (!isJsonObject(request.body)) throw notAnObject();
        collectFieldViolations(field.message, request.body, "", violations, 0);
      }
      base = { [field.name]: request.body };
    }
  }
  // A field bound by the path may repeat in the body, but only with the same value.
  for (const [path, value] of request.bindings) {
    const sent = jsonAtPath(base, route.pathFields.get(path) ?? []);
    if (sent !== undefined && sent !== null && jsonScalarText(sent) !== value) {
      violations.push({ field: path, description: `conflicts with the URL path value "${value}"` });
    }
  }
  if (violations.length > 0) throw invalidArguments(violations);

  let message: Message;
  try {
    message = fromJson(input, base, readOptions);
  } catch (e) {
    throw invalidArguments([jsonErrorViolation(e, route.bodyField?.name)]);
  }

  // 2. Path variables (strings, converted to the leaf field's JSON form).
  for (const [path, value] of request.bindings) {
    const chain = route.pathFields.get(path);
    if (!chain) continue;
    try {
      mergeFromJson(
        input,
        message,
        nestJson(chain, leafJson(chain[chain.length - 1]!, [value])),
        readOptions,
      );
    } catch (e) {
      violations.push({ field: path, description: `invalid path value "${value}": ${jsonErrorText(e)}` });
    }
  }

  // 3. Query parameters: every field not bound by the path or the body.
  const params = groupQuery(request.query);
  let maskFromQuery = false;
  // A field named twice, once by each of its names (`page_size=1&pageSize=2`), is given twice.
  const namedAs = new Map<string, string>();
  for (const [name, values] of params) {
    const resolved = resolveQueryField(route, name, values.length);
    if ("violation" in resolved) {
      violations.push({ field: name, description: resolved.violation });
      continue;
    }
    const leaf = resolved.chain[resolved.chain.length - 1]!;
    const target =
      resolved.chain.map((f) => f.name).join(".") +
      (resolved.mapKey === undefined ? "" : `[${resolved.mapKey}]`);
    const earlier = namedAs.get(target);
    if (earlier !== undefined && leaf.fieldKind !== "list") {
      violations.push({
        field: name,
        description: `given twice (as ${earlier} and ${name}) but the field is not repeated`,
      });
      continue;
    }
    namedAs.set(target, name);
    const keyProblem =
      resolved.mapKey !== undefined && leaf.fieldKind === "map"
        ? mapKeyViolation(leaf.mapKey, resolved.mapKey)
        : undefined;
    if (keyProblem !== undefined) {
      violations.push({ field: name, description: keyProblem });
      continue;
    }
    if (leaf === route.updateMaskField) maskFromQuery = true;
    try {
      const json =
        resolved.mapKey === undefined
          ? leafJson(leaf, values)
          : { [resolved.mapKey]: mapValueJson(leaf, values[0] ?? "") };
      mergeFromJson(input, message, nestJson(resolved.chain, json), readOptions);
    } catch (e) {
      violations.push({ field: name, description: `invalid value: ${jsonErrorText(e)}` });
    }
  }

  // 4. PATCH without a mask: the mask is every field the body sent (AIP-134, as grpc-gateway does).
  if (
    route.updateMaskField &&
    route.bodyField?.fieldKind === "message" &&
    !maskFromQuery &&
    isJsonObject(request.body)
  ) {
    const paths: string[] = [];
    collectMaskPaths(route.bodyField.message, request.body, "", paths, 0);
    reflect(input, message).set(
      route.updateMaskField,
      reflect(FieldMaskSchema, create(FieldMaskSchema, { paths })),
    );
  }
  if (violations.length > 0) throw invalidArguments(violations);
  return message;
}

/** Response message → JSON: zero values emitted, `response_body` honoured. */
export function transcodeResponse(route: Route, message: Message, registry?: Registry): JsonValue {
  const writeOptions = { alwaysEmitImplicit: true, registry };
  const output = route.method.output;
  const field = route.responseBodyField;
  if (field?.fieldKind === "message") {
    const sub = reflect(output, message).get(field);
    return toJson(field.message, sub.message, writeOptions);
  }
  const json = toJson(output, message, writeOptions);
  if (!field) return json;
  return isJsonObject(json) ? (json[field.jsonName] ?? null) : null;
}

// ---------------------------------------------------------------------------------------------

function groupQuery(query: URLSearchParams): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  for (const [key, value] of query) {
    const list = grouped.get(key);
    if (list) list.push(value);
    else grouped.set(key, [value]);
  }
  return grouped;
}

type QueryTarget = { chain: DescField[]; mapKey?: string } | { violation: string };

// `labels[lang]` (a map entry) or a plain field name.
const mapEntryParam = /^([A-Za-z_][A-Za-z0-9_]*)\[([^\]]*)\]$/;

function resolveQueryField(route: Route, name: string, count: number): QueryTarget {
  if (route.body === "*")
    return { violation: "unknown query parameter: with a `*` body every field is sent in the body" };
  const parts = name.split(".");
  const chain: DescField[] = [];
  let message: DescMessage = route.method.input;
  for (const [i, rawPart] of parts.entries()) {
    const entry = mapEntryParam.exec(rawPart);
    const part = entry ? entry[1]! : rawPart;
    const field = fieldByJsonKey(message, part);
    if (!field) return { violation: "unknown query parameter" };
    chain.push(field);
    const dotted = chain.map((f) => f.name).join(".");
    if (i === 0 && route.bodyField === field)
      return { violation: "this field is taken from the request body" };
    if (route.pathFields.has(dotted)) return { violation: "this field is taken from the URL path" };
    const last = i === parts.length - 1;
    if (field.fieldKind === "map") {
      if (!entry || !last) return { violation: `a map field is set one entry at a time: ${part}[key]=value` };
      if (field.mapKind === "message" && !hasScalarJson(field.message)) {
        return { violation: "map fields with message values cannot be set from query parameters" };
      }
      if (count > 1) return { violation: `given ${count} times but a map key takes one value` };
      return { chain, mapKey: entry[2]! };
    }
    if (entry) return { violation: `${part} is not a map field` };
    if (field.fieldKind === "list") {
      if (!last) return { violation: "repeated fields have no sub-fields in query parameters" };
      if (field.listKind === "message" && !hasScalarJson(field.message)) {
        return { violation: "repeated message fields cannot be set from query parameters" };
      }
      return { chain };
    }
    if (count > 1 && last) return { violation: `given ${count} times but the field is not repeated` };
    if (field.fieldKind === "message") {
      if (hasScalarJson(field.message)) {
        if (!last) return { violation: "unknown query parameter" };
        return { chain };
      }
      if (last) return { violation: "a message field needs a sub-field, e.g. `field.sub=value`" };
      message = field.message;
      continue;
    }
    if (!last) return { violation: "unknown query parameter" };
  }
  return { chain };
}

/** The JSON form of one map value given as a query string. */
function mapValueJson(field: DescField, value: string): JsonValue {
  if (field.fieldKind !== "map") return value;
  switch (field.mapKind) {
    case "enum":
      return /^-?\d+$/.test(value) ? Number(value) : value;
    case "scalar":
      return scalarJson(field.scalar, value);
    case "message":
      return wktJson(field.message, value);
  }
}

/** Converts the raw string(s) of a path variable or query parameter to the field's JSON form. */
function leafJson(field: DescField, values: readonly string[]): JsonValue {
  const one = (value: string): JsonValue => {
    switch (field.fieldKind) {
      case "enum":
        return /^-?\d+$/.test(value) ? Number(value) : value;
      case "scalar":
        return scalarJson(field.scalar, value);
      case "list":
        if (field.listKind === "enum") return /^-?\d+$/.test(value) ? Number(value) : value;
        if (field.listKind === "scalar") return scalarJson(field.scalar, value);
        return wktJson(field.message, value);
      case "message":
        return wktJson(field.message, value);
      default:
        return value;
    }
  };
  return field.fieldKind === "list" ? values.map(one) : one(values[0] ?? "");
}

function scalarJson(type: ScalarType, value: string): JsonValue {
  // proto3 JSON takes every number and 64-bit integer as a string too, but booleans only as
  // literals. Anything else stays a string so protobuf-es reports the precise type error.
  if (type === ScalarType.BOOL) return value === "true" ? true : value === "false" ? false : value;
  const problem = scalarViolation(type, value);
  if (problem !== undefined) throw new Error(problem);
  return value;
}

/** Well-known types whose proto3 JSON form is a scalar, so a query parameter can carry them. */
function hasScalarJson(message: DescMessage): boolean {
  return message.typeName in STRING_FORMS || message.typeName in WRAPPER_SCALAR;
}

/** Well-known types whose JSON is not an object of their fields (skipped by the unknown-field walk). */
function hasSpecialJson(message: DescMessage): boolean {
  return (
    hasScalarJson(message) ||
    message.typeName === "google.protobuf.Any" ||
    DYNAMIC_TYPES.has(message.typeName)
  );
}

function wktJson(message: DescMessage, value: string): JsonValue {
  // proto3 JSON spells mask paths in lowerCamelCase; a query may use the proto names too
  // (`update_mask=publish_time`), as grpc-gateway clients do.
  if (message.typeName === "google.protobuf.FieldMask") {
    return value
      .split(",")
      .map((path) => path.split(".").map(protoCamelCase).join("."))
      .join(",");
  }
  const problem = wellKnownStringViolation(message.typeName, value);
  if (problem !== undefined) throw new Error(problem);
  const wrapped = WRAPPER_SCALAR[message.typeName];
  return wrapped === undefined ? value : scalarJson(wrapped, value);
}

/**
 * The field-mask paths of a PATCH body (proto names): every field present, nested messages
 * expanded to their leaves (`shelf.id`), an empty object kept whole (`shelf` = clear it).
 */
function collectMaskPaths(
  desc: DescMessage,
  json: JsonObject,
  prefix: string,
  out: string[],
  depth: number,
): void {
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByJsonKey(desc, key);
    if (!field) continue;
    const path = prefix + field.name;
    if (
      depth < recursionLimit &&
      field.fieldKind === "message" &&
      !hasSpecialJson(field.message) &&
      isJsonObject(value) &&
      Object.keys(value).length > 0
    ) {
      collectMaskPaths(field.message, value, path + ".", out, depth + 1);
    } else {
      out.push(path);
    }
  }
}

function nestJson(chain: readonly DescField[], leaf: JsonValue): JsonObject {
  let json: JsonValue = leaf;
  for (let i = chain.length - 1; i >= 0; i--) json = { [chain[i]!.name]: json };
  return json as JsonObject;
}

function fieldByJsonKey(message: DescMessage, key: string): DescField | undefined {
  return message.fields.find((f) => f.name === key || f.jsonName === key);
}

/** Reads the value a JSON body holds at a field chain (either naming style), if any. */
function jsonAtPath(body: JsonValue, chain: readonly DescField[]): JsonValue | undefined {
  let node: JsonValue | undefined = body;
  for (const field of chain) {
    if (!isJsonObject(node)) return undefined;
    node = node[field.jsonName] ?? node[field.name];
  }
  return node;
}

function jsonScalarText(value: JsonValue): string | undefined {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean"
    ? String(value)
    : undefined;
}

/**
 * protobuf-es names only the first unknown key or bad value and not where it sits; walking the JSON
 * first lets the 400 name every unknown field and every value it refuses with its full path
 * (`book.shelf.colour`), and catches the values it would take but change (json-value-checks.ts).
 */
function collectFieldViolations(
  desc: DescMessage,
  json: JsonObject,
  prefix: string,
  out: FieldViolation[],
  depth: number,
): void {
  if (depth > recursionLimit) return;
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByJsonKey(desc, key);
    const path = prefix + key;
    if (!field) {
      out.push({ field: path, description: "unknown field" });
      continue;
    }
    const problem = fieldValueViolation(field, value);
    if (problem !== undefined) {
      out.push({ field: path, description: problem });
      continue;
    }
    if (field.fieldKind === "message" && !hasSpecialJson(field.message)) {
      if (isJsonObject(value)) collectFieldViolations(field.message, value, path + ".", out, depth + 1);
      else if (value !== null) out.push({ field: path, description: "must be a JSON object" });
    } else if (field.fieldKind === "list" && field.listKind === "message" && !hasSpecialJson(field.message)) {
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          if (isJsonObject(item))
            collectFieldViolations(field.message, item, `${path}[${i}].`, out, depth + 1);
        });
      }
    } else if (field.fieldKind === "map" && field.mapKind === "message" && !hasSpecialJson(field.message)) {
      if (isJsonObject(value)) {
        for (const [k, item] of Object.entries(value)) {
          if (isJsonObject(item))
            collectFieldViolations(field.message, item, `${path}[${k}].`, out, depth + 1);
        }
      }
    }
  }
}

function notAnObject(): DomainError {
  return new DomainError("invalid_argument", "the request body must be a JSON object");
}

function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonErrorText(e: unknown): string {
  const cause = e instanceof Error ? e.cause : undefined;
  return withoutEchoedValue(isFieldError(cause) ? cause.message : e instanceof Error ? e.message : String(e));
}

/**
 * protobuf-es ends a type error with the value it got (`expected string, got 5555555555554444`):
 * the kind of value is enough, and the value may be a card number or a password in the wrong field.
 */
function withoutEchoedValue(message: string): string {
  // Long digit runs are what a card or account number looks like, wherever the message puts them.
  return message.replace(/\d{6,}/g, "…").replace(/\bgot (.+)$/s, (_, value: string) => {
    const text = value.trim();
    const kind = /^["']/.test(text)
      ? "a string"
      : /^-?[\d.]/.test(text) || /^(NaN|-?Infinity)$/.test(text)
        ? "a number"
        : /^(true|false)$/.test(text)
          ? "a boolean"
          : text.startsWith("[")
            ? "an array"
            : text === "null"
              ? "null"
              : "an object";
    return `got ${kind}`;
  });
}

function jsonErrorViolation(e: unknown, bodyFieldName: string | undefined): FieldViolation {
  const cause = e instanceof Error ? e.cause : undefined;
  if (isFieldError(cause)) {
    return { field: cause.field().name, description: cause.message };
  }
  return { field: bodyFieldName ?? "body", description: jsonErrorText(e) };
}
