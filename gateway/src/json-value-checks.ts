import { ScalarType } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescMessage, JsonValue } from "@bufbuild/protobuf";

// Values that protobuf-es's proto3 JSON reader takes but that would reach the service changed, or
// fail only later as a 5xx: refused at the edge with a message naming the fix.
// - a 64-bit integer sent as a JSON number beyond ±2^53 is already rounded by JSON.parse
//   (9007199254740993 arrives as …992): it must travel as a string;
// - integers in hex, octal or binary, or padded with spaces (`0x10`, ` 1 `), which JavaScript's
//   number parsing accepts and proto3 JSON does not (decimal only);
// - a Timestamp on a day that does not exist (`2026-02-30`, hour 24), which Date moves to another;
// - a Duration with more than nine fractional digits (nanoseconds), whose error would otherwise
//   read "Invalid count value: -1";
// - a number too large for a double inside a google.protobuf.Value / Struct / ListValue (`1e400` is
//   Infinity once parsed), which protobuf-es accepts on the way in and cannot write on the way out.

const INT64_TYPES = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);
/** The wrapper types, and the scalar each wraps (its JSON is that scalar's, or null). */
export const WRAPPER_SCALAR: Readonly<Record<string, ScalarType>> = {
  "google.protobuf.Int64Value": ScalarType.INT64,
  "google.protobuf.UInt64Value": ScalarType.UINT64,
  "google.protobuf.Int32Value": ScalarType.INT32,
  "google.protobuf.UInt32Value": ScalarType.UINT32,
  "google.protobuf.DoubleValue": ScalarType.DOUBLE,
  "google.protobuf.FloatValue": ScalarType.FLOAT,
  "google.protobuf.BoolValue": ScalarType.BOOL,
  "google.protobuf.StringValue": ScalarType.STRING,
  "google.protobuf.BytesValue": ScalarType.BYTES,
};
/** Well-known types whose JSON is a string, with how to say what was expected. */
export const STRING_FORMS: Readonly<Record<string, string>> = {
  "google.protobuf.Timestamp": 'an RFC 3339 date and time string ("2026-01-31T09:30:00Z")',
  "google.protobuf.Duration": 'a duration string in seconds ("1.5s")',
  "google.protobuf.FieldMask": 'a comma-separated list of field paths ("title,author")',
};
/** The types whose JSON is any JSON (google.protobuf.Value and its parts). */
export const DYNAMIC_TYPES: ReadonlySet<string> = new Set([
  "google.protobuf.Value",
  "google.protobuf.Struct",
  "google.protobuf.ListValue",
]);

const INT32 = [-(2n ** 31n), 2n ** 31n - 1n] as const;
const UINT32 = [0n, 2n ** 32n - 1n] as const;
const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64 = [0n, 2n ** 64n - 1n] as const;
const INTEGER_RANGE: Partial<Record<ScalarType, readonly [bigint, bigint]>> = {
  [ScalarType.INT32]: INT32,
  [ScalarType.SINT32]: INT32,
  [ScalarType.SFIXED32]: INT32,
  [ScalarType.UINT32]: UINT32,
  [ScalarType.FIXED32]: UINT32,
  [ScalarType.INT64]: INT64,
  [ScalarType.SINT64]: INT64,
  [ScalarType.SFIXED64]: INT64,
  [ScalarType.UINT64]: UINT64,
  [ScalarType.FIXED64]: UINT64,
};
const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_FLOAT = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const FLOAT_MAX = 3.4028234663852886e38;

/**
 * What is wrong with a scalar field's JSON value, or undefined when it is a proper proto3 JSON
 * value of its type. Checked here rather than left to protobuf-es, whose messages name only the
 * innermost field and quote the value back — which may be a card number in the wrong field.
 */
export function scalarViolation(type: ScalarType, value: JsonValue): string | undefined {
  if (value === null) return undefined;
  if (type === ScalarType.STRING || type === ScalarType.BYTES) {
    if (typeof value === "string") return undefined;
    return type === ScalarType.STRING
      ? `expected a string, got ${jsonKind(value)}`
      : `expected base64 text, got ${jsonKind(value)}`;
  }
  if (type === ScalarType.BOOL)
    return typeof value === "boolean" ? undefined : `expected true or false, got ${jsonKind(value)}`;
  if (typeof value !== "number" && typeof value !== "string")
    return `expected a number, got ${jsonKind(value)}`;
  const range = INTEGER_RANGE[type];
  if (range !== undefined) return integerViolation(range, value, INT64_TYPES.has(type));
  // DOUBLE, FLOAT: a JSON number, or a string with one, or "NaN", "Infinity", "-Infinity".
  if (typeof value === "string") {
    if (value === "NaN" || value === "Infinity" || value === "-Infinity") return undefined;
    if (!DECIMAL_FLOAT.test(value)) return "not a decimal number (no hex, octal or binary, no spaces)";
  }
  const number = Number(value);
  if (!Number.isFinite(number)) return "too large for a double (it reads as infinity)";
  if (type === ScalarType.FLOAT && Math.abs(number) > FLOAT_MAX) return "out of range for a float";
  return undefined;
}

function integerViolation(
  range: readonly [bigint, bigint],
  value: number | string,
  is64: boolean,
): string | undefined {
  let integer: bigint;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) return "expected a whole number";
    if (is64 && !Number.isSafeInteger(value))
      return "a 64-bit integer beyond ±2^53 cannot be sent as a JSON number without losing digits: send it as a string";
    integer = BigInt(value);
  } else {
    if (!DECIMAL_INTEGER.test(value))
      return "not a decimal whole number (no hex, octal or binary, no spaces)";
    integer = BigInt(value);
  }
  if (integer < range[0] || integer > range[1]) return `out of range: ${range[0]} to ${range[1]}`;
  return undefined;
}

/** What is wrong with a map key (JSON object keys are strings), or undefined. */
export function mapKeyViolation(type: ScalarType, key: string): string | undefined {
  if (key === "__proto__") return RESERVED_KEY;
  if (type === ScalarType.BOOL)
    return key === "true" || key === "false" ? undefined : "map keys are true or false";
  const range = INTEGER_RANGE[type];
  if (range === undefined) return undefined; // string keys
  // One spelling per number: "01" or "1e0" would become the key "1", beside one sent as "1".
  if (!/^(0|-?[1-9]\d*)$/.test(key)) return "map keys are decimal whole numbers, without leading zeros";
  return integerViolation(range, key, false);
}

// protobuf-es builds maps and Structs as JavaScript objects, where this key sets the prototype
// instead of an entry: it vanished without a word.
const RESERVED_KEY = 'the key "__proto__" cannot be kept (JavaScript objects reserve it): use another';

/** What kind of JSON value was sent, for messages that must not repeat the value. */
export function jsonKind(value: JsonValue): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "boolean":
      return "a boolean";
    default:
      return "an object";
  }
}

// RFC 3339 as proto3 JSON spells a Timestamp; anything else is left to protobuf-es's own message.
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;
const DURATION_FRACTION = /^-?\d+\.(\d+)s$/;

const daysIn = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

/** What is wrong with the JSON string of a Timestamp or Duration, or undefined. */
export function wellKnownStringViolation(typeName: string, text: string): string | undefined {
  if (typeName === "google.protobuf.Timestamp") {
    const parts = TIMESTAMP.exec(text);
    if (!parts) return undefined;
    const [year, month, day, hour, minute, second, offsetHours = 0, offsetMinutes = 0] = parts
      .slice(1)
      .map((part) => (part === undefined ? undefined : Number(part))) as number[];
    const valid =
      month! >= 1 &&
      month! <= 12 &&
      day! >= 1 &&
      day! <= daysIn(year!, month!) &&
      hour! <= 23 &&
      minute! <= 59 &&
      second! <= 59 &&
      offsetHours <= 23 &&
      offsetMinutes <= 59;
    return valid ? undefined : `"${text}" is not a date and time that exists (RFC 3339)`;
  }
  if (typeName === "google.protobuf.Duration") {
    const fraction = DURATION_FRACTION.exec(text)?.[1];
    if (fraction !== undefined && fraction.length > 9)
      return `"${text}" has more than 9 fractional digits: a Duration counts nanoseconds`;
  }
  return undefined;
}

/** What is wrong with a field's JSON value (not descending into plain messages), or undefined. */
export function fieldValueViolation(field: DescField, value: JsonValue): string | undefined {
  if (value === null) return undefined;
  switch (field.fieldKind) {
    case "scalar":
      return scalarViolation(field.scalar, value);
    case "enum":
      return enumViolation(field.enum, value);
    case "message":
      return messageValueViolation(field.message, value);
    case "list":
    case "map": {
      if (field.fieldKind === "map" && typeof value === "object" && !Array.isArray(value)) {
        for (const key of Object.keys(value)) {
          const problem = mapKeyViolation(field.mapKey, key);
          if (problem !== undefined) return problem;
        }
      }
      const items =
        field.fieldKind === "list"
          ? Array.isArray(value)
            ? value
            : []
          : typeof value === "object" && !Array.isArray(value)
            ? Object.values(value)
            : [];
      for (const item of items) {
        const problem = elementViolation(field, item);
        if (problem !== undefined) return problem;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** What is wrong with one element of a list, or one value of a map. */
function elementViolation(field: DescField, item: JsonValue): string | undefined {
  if (field.fieldKind !== "list" && field.fieldKind !== "map") return undefined;
  const kind = field.fieldKind === "list" ? field.listKind : field.mapKind;
  if (kind === "scalar") return scalarViolation((field as { scalar: ScalarType }).scalar, item);
  if (kind === "message") return messageValueViolation((field as { message: DescMessage }).message, item);
  return enumViolation((field as { enum: DescEnum }).enum, item);
}

/** An enum by a name it does not have (by number, an open enum takes any; protobuf-es checks the type). */
function enumViolation(desc: DescEnum, value: JsonValue): string | undefined {
  if (typeof value !== "string" || desc.values.some((v) => v.name === value)) return undefined;
  const names = desc.values.map((v) => v.name);
  const listed = names.length <= 12 ? names.join(", ") : `${names.slice(0, 12).join(", ")}, …`;
  return `not a ${desc.name} value: use one of ${listed}`;
}

/** Checks the JSON of well-known types; a plain message's fields are walked by the caller. */
function messageValueViolation(message: DescMessage, value: JsonValue): string | undefined {
  const name = message.typeName;
  const wrapped = WRAPPER_SCALAR[name];
  if (wrapped !== undefined) return scalarViolation(wrapped, value);
  if (STRING_FORMS[name] !== undefined) {
    if (typeof value !== "string") return `expected ${STRING_FORMS[name]}, got ${jsonKind(value)}`;
    return wellKnownStringViolation(name, value);
  }
  if (
    name === "google.protobuf.Struct" &&
    (typeof value !== "object" || value === null || Array.isArray(value))
  )
    return `expected a JSON object, got ${jsonKind(value)}`;
  if (name === "google.protobuf.ListValue" && !Array.isArray(value))
    return `expected an array, got ${jsonKind(value)}`;
  if (DYNAMIC_TYPES.has(name)) {
    const problem = dynamicValueProblem(value, 0);
    if (problem === "infinite")
      return "a number is too large for a double (it reads as infinity): numbers in JSON values must be finite";
    if (problem === "deep")
      return `nested deeper than ${MAX_VALUE_DEPTH} levels: a google.protobuf.Value holds at most ${MAX_VALUE_DEPTH}`;
    if (problem === "reserved") return RESERVED_KEY;
  }
  return undefined;
}

/**
 * Each level of a JSON array or object inside a google.protobuf.Value is two protobuf messages
 * (Value → ListValue / Struct), and services decode at most 100 levels of messages: deeper JSON,
 * though under the gateway's own 64 levels, would be refused by the service with a message about
 * recursion in the binary encoding.
 */
const MAX_VALUE_DEPTH = 48;

/** "infinite" when some number is ±Infinity, "deep" past MAX_VALUE_DEPTH, else undefined. */
function dynamicValueProblem(value: JsonValue, depth: number): "infinite" | "deep" | "reserved" | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "infinite";
  if (typeof value !== "object" || value === null) return undefined;
  if (depth >= MAX_VALUE_DEPTH) return "deep";
  if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) return "reserved";
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    const problem = dynamicValueProblem(item, depth + 1);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
