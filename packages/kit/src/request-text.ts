import { ScalarType, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { isReflectMessage, reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import type { Interceptor } from "@connectrpc/connect";
import { invalidArguments, type FieldViolation } from "./errors.js";

// PostgreSQL cannot store U+0000 in `text` (SQLSTATE 22021, "invalid byte sequence for encoding
// UTF8: 0x00") nor in `jsonb` (22P05, "unsupported Unicode escape sequence"), yet protobuf and JSON
// strings may carry it. A request holding one is refused where it enters, with a field violation
// naming every such string, instead of failing as INTERNAL at its first query. (errors.ts maps the
// database's refusal too, as a safety net for text that reaches it another way.)

export const NUL_DESCRIPTION = "must not contain the NUL character (U+0000)";

const NUL = "\u0000";
// Map keys that can be shown in a field path as they are (`metadata.order_ref`); others are not echoed.
const PLAIN_KEY = /^[A-Za-z0-9_-]{1,64}$/;

export interface NulCheckOptions {
  /**
   * Field paths (`password`, `address.line1`) never checked, in every request: values that only
   * ever reach a hash, where refusing a character would lock out whoever once chose it.
   */
  exempt?: readonly string[] | ReadonlySet<string>;
}

/**
 * A field violation for every string in `message` — nested messages, list items, map keys and
 * values included — that contains U+0000, named by its path in the request (`description`,
 * `address.line1`, `roles[2]`, `metadata.note`).
 */
export function nulViolations<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
  opts: NulCheckOptions = {},
): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const exempt = opts.exempt instanceof Set ? opts.exempt : new Set(opts.exempt ?? []);
  const found = (field: string, description = NUL_DESCRIPTION) => {
    if (!violations.some((v) => v.field === field)) violations.push({ field, description });
  };
  const visit = (value: unknown, path: string, isString: boolean): void => {
    if (exempt.has(path)) return;
    if (isString) {
      if (typeof value === "string" && value.includes(NUL)) found(path);
    } else if (isReflectMessage(value)) walk(value, `${path}.`);
  };
  const walk = (r: ReflectMessage, prefix: string): void => {
    for (const field of r.fields) {
      const path = prefix + field.name;
      if (exempt.has(path) || !r.isSet(field)) continue;
      switch (field.fieldKind) {
        case "scalar":
          visit(r.get(field), path, field.scalar === ScalarType.STRING);
          break;
        case "message":
          visit(r.get(field), path, false);
          break;
        case "list": {
          const isString = field.listKind === "scalar" && field.scalar === ScalarType.STRING;
          if (field.listKind === "enum") break;
          let i = 0;
          for (const item of r.get(field)) visit(item, `${path}[${i++}]`, isString);
          break;
        }
        case "map": {
          const isString = field.mapKind === "scalar" && field.scalar === ScalarType.STRING;
          for (const [key, value] of r.get(field)) {
            const name = String(key);
            if (name.includes(NUL)) {
              found(path, `keys ${NUL_DESCRIPTION}`);
              continue;
            }
            if (field.mapKind === "enum") continue;
            visit(value, PLAIN_KEY.test(name) ? `${path}.${name}` : path, isString);
          }
          break;
        }
        default:
          break;
      }
    }
  };
  walk(reflect(schema, message), "");
  return violations;
}

/**
 * Refuses a request holding U+0000 in any string field with INVALID_ARGUMENT before the handler
 * runs (for services that keep request text in PostgreSQL). Install it through the server's
 * `interceptors`, after the kit's own, so unauthenticated callers still get UNAUTHENTICATED first.
 * Streamed requests are checked message by message.
 */
export function createNulRejectingInterceptor(opts: NulCheckOptions = {}): Interceptor {
  // Built once, not per request.
  const checkOptions: NulCheckOptions = { exempt: new Set(opts.exempt ?? []) };
  return (next) => async (req) => {
    const schema = req.method.input;
    const check = (message: Message) => {
      const violations = nulViolations(schema, message, checkOptions);
      if (violations.length > 0) throw invalidArguments(violations);
    };
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    const source = req.message;
    async function* checked() {
      for await (const message of source) {
        check(message);
        yield message;
      }
    }
    return next({ ...req, message: checked() });
  };
}
