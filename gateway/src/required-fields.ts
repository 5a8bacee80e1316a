import { getOption } from "@bufbuild/protobuf";
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { FieldBehavior, field_behavior } from "@zero/proto/google/api/field_behavior_pb";
import type { FieldViolation } from "@zero/kit/errors";

// `google.api.field_behavior = REQUIRED` checked at the edge, so a REST client learns which field
// is missing before any service is called. Services validate again (defence in depth); this only
// saves them a round trip and gives every REST error the same BadRequest shape.

const requiredCache = new WeakMap<DescMessage, readonly DescField[]>();

function requiredFieldsOf(desc: DescMessage): readonly DescField[] {
  let fields = requiredCache.get(desc);
  if (!fields) {
    fields = desc.fields.filter((f) => getOption(f, field_behavior).includes(FieldBehavior.REQUIRED));
    requiredCache.set(desc, fields);
  }
  return fields;
}

/** A partial update: REQUIRED fields under `field` count only where `mask` covers them. */
export interface PartialUpdate {
  readonly field: DescField;
  /** Field-mask paths relative to `field` (proto names); `*` covers everything. */
  readonly mask: readonly string[];
}

/**
 * Lists every REQUIRED field that is not set, as dotted proto-name paths (`book.title`). A
 * REQUIRED field inside an absent optional message is not reported: it applies only when its
 * parent is sent. With a partial update, a REQUIRED field of the patched message is reported only
 * when the mask names it (clearing it is an error; leaving it out of a PATCH is not).
 */
export function findMissingRequiredFields(
  desc: DescMessage,
  message: Message,
  partial?: PartialUpdate,
): FieldViolation[] {
  const out: FieldViolation[] = [];
  walk(reflect(desc, message), "", out, 0, partial, undefined);
  return out;
}

/** `relative` is the path below the patched field while walking it, else undefined. */
function walk(
  msg: ReflectMessage,
  prefix: string,
  out: FieldViolation[],
  depth: number,
  partial: PartialUpdate | undefined,
  relative: string | undefined,
): void {
  if (depth > 64) return;
  const covered = (name: string): boolean =>
    relative === undefined ||
    partial === undefined ||
    partial.mask.some(
      (p) => p === "*" || `${relative}${name}` === p || `${relative}${name}`.startsWith(`${p}.`),
    );
  for (const field of requiredFieldsOf(msg.desc)) {
    if (!msg.isSet(field) && covered(field.name)) {
      out.push({ field: prefix + field.name, description: "required field is missing" });
    }
  }
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    const below =
      relative !== undefined
        ? `${relative}${field.name}.`
        : depth === 0 && field === partial?.field
          ? ""
          : undefined;
    if (field.fieldKind === "message") {
      walk(msg.get(field), `${prefix}${field.name}.`, out, depth + 1, partial, below);
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      let i = 0;
      for (const item of msg.get(field)) {
        walk(item as ReflectMessage, `${prefix}${field.name}[${i}].`, out, depth + 1, partial, below);
        i++;
      }
    }
  }
}
