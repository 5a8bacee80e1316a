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

/**
 * Lists every REQUIRED field that is not set, as dotted proto-name paths (`book.title`). A
 * REQUIRED field inside an absent optional message is not reported: it applies only when its
 * parent is sent.
 */
export function findMissingRequiredFields(desc: DescMessage, message: Message): FieldViolation[] {
  const out: FieldViolation[] = [];
  walk(reflect(desc, message), "", out, 0);
  return out;
}

function walk(msg: ReflectMessage, prefix: string, out: FieldViolation[], depth: number): void {
  if (depth > 64) return;
  for (const field of requiredFieldsOf(msg.desc)) {
    if (!msg.isSet(field)) out.push({ field: prefix + field.name, description: "required field is missing" });
  }
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    if (field.fieldKind === "message") {
      walk(msg.get(field), `${prefix}${field.name}.`, out, depth + 1);
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      let i = 0;
      for (const item of msg.get(field)) {
        walk(item as ReflectMessage, `${prefix}${field.name}[${i}].`, out, depth + 1);
        i++;
      }
    }
  }
}
