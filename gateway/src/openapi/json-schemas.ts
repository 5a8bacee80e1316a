import { ScalarType, getOption } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { FieldBehavior, field_behavior } from "@zero/proto/google/api/field_behavior_pb";
import { exampleInComment } from "./comment-text.js";
import type { ProtoComments } from "./proto-comments.js";

// JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of protobuf messages in their proto3 JSON
// mapping, which is what the gateway reads and writes: lowerCamelCase property names, 64-bit
// integers as strings, enums by name, bytes as base64, well-known types in their special forms
// (Timestamp as RFC 3339, Duration as "1.5s", FieldMask as "a,b.c", wrappers as nullable scalars,
// Struct/Value as any JSON). Messages and enums become components, referenced by full name.

export type JsonSchema = { [key: string]: unknown };

export interface SchemaBuilder {
  /** A `$ref` to the message's component (or the inline form of a well-known type). */
  message(desc: DescMessage): JsonSchema;
  /**
   * A field's schema with its description and readOnly/writeOnly from google.api.field_behavior.
   * `partial`: a singular message field refers to the message's partial form (see `partialMessage`).
   */
  field(field: DescField, opts?: { partial?: boolean }): JsonSchema;
  /**
   * A `$ref` to the message's partial form: the same properties without `required`, its singular
   * message fields partial too. A field-mask PATCH body is one: the gateway fills a missing mask
   * from the fields present and checks REQUIRED fields only where the mask covers them, so
   * `{"defaultBilling":true}` is a valid address update. A component of its own rather than an
   * `allOf` over the full schema (which can add constraints, never remove `required`) or an inline
   * copy: validators, code generators and Swagger UI all handle a plain `$ref`, and nested messages
   * reuse it. Named `<full name>-Partial`: `-` cannot occur in a protobuf name.
   */
  partialMessage(desc: DescMessage): JsonSchema;
  /** An inline object schema of the message without the given top-level fields (a `body: "*"`). */
  messageWithout(desc: DescMessage, omit: ReadonlySet<DescField>): JsonSchema;
  /** The JSON schema of a scalar, enum or well-known-type leaf (for parameters). */
  leaf(field: DescField): JsonSchema;
  /** Every component referenced so far, by name. */
  components(): Record<string, JsonSchema>;
}

const componentRef = (name: string): string => `#/components/schemas/${name}`;

export const PARTIAL_SUFFIX = "-Partial";
const partialNote =
  "Partial (a PATCH with an update mask): no field is required here; the gateway checks REQUIRED fields only where the update mask names them (a mask filled from the body names only the fields sent).";

export function createSchemaBuilder(comments: ProtoComments): SchemaBuilder {
  const components = new Map<string, JsonSchema>();

  const describe = (schema: JsonSchema, key: string): JsonSchema => {
    const text = comments.get(key);
    return text === undefined ? schema : { ...withCommentExample(schema, text), description: text };
  };

  const enumRef = (desc: DescEnum): JsonSchema => {
    if (desc.typeName === "google.protobuf.NullValue") return { type: "null" };
    if (!components.has(desc.typeName)) {
      const values = desc.values.map((v) => v.name);
      const documented = desc.values
        .map((v) => {
          const text = comments.get(`${desc.typeName}.${v.name}`);
          return text === undefined ? undefined : `- \`${v.name}\`: ${text}`;
        })
        .filter((line) => line !== undefined);
      const description = [comments.get(desc.typeName), documented.join("\n")].filter((s) => s).join("\n\n");
      components.set(desc.typeName, {
        type: "string",
        enum: values,
        ...(description === "" ? {} : { description }),
        "x-enum-numbers": Object.fromEntries(desc.values.map((v) => [v.name, v.number])),
      });
    }
    return { $ref: componentRef(desc.typeName) };
  };

  const messageRef = (desc: DescMessage): JsonSchema => {
    const special = wellKnownSchema(desc);
    if (special) return special;
    if (!components.has(desc.typeName)) {
      // Registered before its fields are built, so recursive messages end in a $ref.
      components.set(desc.typeName, {});
      components.set(desc.typeName, objectSchema(desc, new Set()));
    }
    return { $ref: componentRef(desc.typeName) };
  };

  const partialRef = (desc: DescMessage): JsonSchema => {
    const special = wellKnownSchema(desc);
    if (special) return special;
    const name = desc.typeName + PARTIAL_SUFFIX;
    if (!components.has(name)) {
      components.set(name, {});
      components.set(name, objectSchema(desc, new Set(), true));
    }
    return { $ref: componentRef(name) };
  };

  const elementSchema = (field: DescField, partial = false): JsonSchema => {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return enumRef(field.enum);
      case "message":
        return partial ? partialRef(field.message) : messageRef(field.message);
      case "list":
        return field.listKind === "scalar"
          ? scalarSchema(field.scalar)
          : field.listKind === "enum"
            ? enumRef(field.enum)
            : messageRef(field.message);
      case "map": {
        return field.mapKind === "scalar"
          ? scalarSchema(field.scalar)
          : field.mapKind === "enum"
            ? enumRef(field.enum)
            : messageRef(field.message);
      }
    }
  };

  // Only a singular message field is partial: a list or map value replaces the whole element, so
  // the gateway checks the REQUIRED fields of each element.
  const fieldSchema = (field: DescField, opts: { partial?: boolean } = {}): JsonSchema => {
    let schema: JsonSchema;
    if (field.fieldKind === "list") schema = { type: "array", items: elementSchema(field) };
    else if (field.fieldKind === "map") {
      schema = {
        type: "object",
        additionalProperties: elementSchema(field),
        ...(field.mapKey === ScalarType.STRING ? {} : { propertyNames: mapKeySchema(field.mapKey) }),
      };
    } else schema = elementSchema(field, opts.partial === true);
    schema = describe(schema, `${field.parent.typeName}.${field.name}`);
    const behavior = getOption(field, field_behavior);
    if (behavior.includes(FieldBehavior.OUTPUT_ONLY)) schema = { ...schema, readOnly: true };
    if (behavior.includes(FieldBehavior.INPUT_ONLY)) schema = { ...schema, writeOnly: true };
    if (behavior.includes(FieldBehavior.IMMUTABLE)) {
      const note = "Immutable: can be set on creation only.";
      const text = schema["description"];
      schema = { ...schema, description: typeof text === "string" ? `${text}\n\n${note}` : note };
    }
    return schema;
  };

  const objectSchema = (desc: DescMessage, omit: ReadonlySet<DescField>, partial = false): JsonSchema => {
    const fields = desc.fields.filter((f) => !omit.has(f));
    const properties = Object.fromEntries(fields.map((f) => [f.jsonName, fieldSchema(f, { partial })]));
    const required = partial
      ? []
      : fields
          .filter((f) => getOption(f, field_behavior).includes(FieldBehavior.REQUIRED))
          .map((f) => f.jsonName);
    // proto3 JSON: at most one member of a oneof may be present. "Exactly one of: member i
    // present, …, none present" says that in JSON Schema.
    const oneofs = desc.oneofs
      .map((oneof) => oneof.fields.filter((f) => !omit.has(f)).map((f) => f.jsonName))
      .filter((members) => members.length > 1)
      .map((members) => ({
        oneOf: [
          ...members.map((m) => ({ required: [m] })),
          { not: { anyOf: members.map((m) => ({ required: [m] })) } },
        ],
      }));
    const oneofNotes = desc.oneofs
      .map(
        (oneof) =>
          `At most one of ${oneof.fields.map((f) => `\`${f.jsonName}\``).join(", ")} (oneof \`${oneof.name}\`).`,
      )
      .join(" ");
    const description = [comments.get(desc.typeName), oneofNotes, partial ? partialNote : ""]
      .filter((s) => s)
      .join("\n\n");
    return {
      type: "object",
      ...(description === "" ? {} : { description }),
      properties,
      ...(required.length > 0 ? { required } : {}),
      ...(oneofs.length > 0 ? { allOf: oneofs } : {}),
    };
  };

  return {
    message: messageRef,
    field: fieldSchema,
    partialMessage: partialRef,
    messageWithout: (desc, omit) => objectSchema(desc, omit),
    leaf: (field) => describe(elementSchema(field), `${field.parent.typeName}.${field.name}`),
    components: () => Object.fromEntries(components),
  };
}

export function scalarSchema(type: ScalarType): JsonSchema {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      // proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose precision).
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
  }
}

function mapKeySchema(type: ScalarType): JsonSchema {
  return type === ScalarType.BOOL ? { enum: ["true", "false"] } : { pattern: "^-?[0-9]+$" };
}

const wrapperTypes: Record<string, ScalarType> = {
  "google.protobuf.BoolValue": ScalarType.BOOL,
  "google.protobuf.StringValue": ScalarType.STRING,
  "google.protobuf.BytesValue": ScalarType.BYTES,
  "google.protobuf.DoubleValue": ScalarType.DOUBLE,
  "google.protobuf.FloatValue": ScalarType.FLOAT,
  "google.protobuf.Int32Value": ScalarType.INT32,
  "google.protobuf.UInt32Value": ScalarType.UINT32,
  "google.protobuf.Int64Value": ScalarType.INT64,
  "google.protobuf.UInt64Value": ScalarType.UINT64,
};

/** The special JSON forms of the well-known types, inline (they are never components). */
export function wellKnownSchema(desc: DescMessage): JsonSchema | undefined {
  const wrapped = wrapperTypes[desc.typeName];
  if (wrapped !== undefined) {
    const scalar = scalarSchema(wrapped);
    return { ...scalar, type: [scalar["type"], "null"] };
  }
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time", examples: ["2026-01-02T03:04:05Z"] };
    case "google.protobuf.Duration":
      return {
        type: "string",
        pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        description: "Seconds with an `s` suffix.",
        // Small and neutral: a field's own limits ("at most 1 s") are in its comment, which may
        // give its own example (withCommentExample).
        examples: ["1s"],
      };
    case "google.protobuf.FieldMask":
      // No example here: a mask's paths belong to one message, so an example comes from the field's
      // comment or, for an update mask, from the message it updates (openapi-document.ts).
      return { type: "string", description: "Comma-separated field paths in lowerCamelCase." };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return {};
    case "google.protobuf.ListValue":
      return { type: "array" };
    case "google.protobuf.Empty":
      return { type: "object", properties: {} };
    case "google.protobuf.Any":
      return {
        type: "object",
        properties: { "@type": { type: "string" } },
        required: ["@type"],
        additionalProperties: true,
      };
    default:
      return undefined;
  }
}

/**
 * A string leaf whose comment says "e.g. `x`" gets `x` as its example (replacing a well-known
 * type's generic one) when it fits the schema's pattern: the example then agrees with the field's
 * documented limits.
 */
function withCommentExample(schema: JsonSchema, comment: string): JsonSchema {
  const example = exampleInComment(comment);
  const type = schema["type"];
  const isString = type === "string" || (Array.isArray(type) && type.includes("string"));
  if (example === undefined || !isString || "$ref" in schema) return schema;
  const pattern = schema["pattern"];
  if (typeof pattern === "string" && !new RegExp(pattern, "u").test(example)) return schema;
  return { ...schema, examples: [example] };
}

/** Well-known types whose JSON is a scalar: they can be query parameters. */
export function hasScalarJson(desc: DescMessage): boolean {
  return (
    desc.typeName in wrapperTypes ||
    ["google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"].includes(
      desc.typeName,
    )
  );
}
