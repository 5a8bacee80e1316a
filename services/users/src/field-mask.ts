import type { FieldMask } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@zero/kit/errors";

// Which fields an update changes, following AIP-134: the paths of `update_mask`; `*` for every
// updatable field (a full replacement); without a mask, the fields the caller gave a value.

export interface MaskSpec {
  /** Leaf paths a caller may change, snake_case (`marketing.email_opt_in`). */
  updatable: readonly string[];
  /**
   * Paths that exist but only the server writes. Named in a mask they are skipped (AIP-203: output
   * only fields in a request are ignored), so a client may send back the resource it read.
   */
  readOnly: readonly string[];
}

/**
 * The leaf paths to change. A message path (`marketing`) stands for its updatable leaves;
 * camelCase paths (`displayName`, from clients that build masks by hand) are accepted too.
 * Throws `invalid_argument` on `update_mask` for an unknown path, or when there is nothing to change.
 */
export function updatePaths(
  mask: FieldMask | undefined,
  spec: MaskSpec,
  populated: readonly string[],
): Set<string> {
  const given = (mask?.paths ?? []).map((p) => p.trim()).filter((p) => p !== "");
  if (given.length === 0) {
    if (populated.length === 0) {
      throw invalidArgument(
        "update_mask",
        "nothing to update: name the fields in update_mask, or give the fields to change a non-empty value",
      );
    }
    return new Set(populated);
  }
  if (given.includes("*")) {
    if (given.length > 1) throw invalidArgument("update_mask", "`*` must be the only path when given");
    return new Set(spec.updatable);
  }
  const paths = new Set<string>();
  for (const raw of given) {
    const path = toSnakeCase(raw);
    if (spec.readOnly.includes(path)) continue;
    const leaves = spec.updatable.filter((leaf) => leaf === path || leaf.startsWith(`${path}.`));
    if (leaves.length === 0) {
      throw invalidArgument(
        "update_mask",
        `${raw} is not an updatable field; updatable: ${spec.updatable.join(", ")}`,
      );
    }
    for (const leaf of leaves) paths.add(leaf);
  }
  if (paths.size === 0) {
    throw invalidArgument(
      "update_mask",
      `nothing to update: ${given.join(", ")} cannot be changed (read-only)`,
    );
  }
  return paths;
}

function toSnakeCase(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
