import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { DomainError } from "@zero/kit/errors";
import { describe, expect, it } from "vitest";
import { updatePaths, type MaskSpec } from "./field-mask.js";

const spec: MaskSpec = {
  updatable: ["name", "prefs.a", "prefs.b", "display_name"],
  readOnly: ["id", "prefs.time"],
};
const mask = (...paths: string[]) => create(FieldMaskSchema, { paths });
const problem = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return (error as DomainError).fieldViolations?.[0];
  }
  throw new Error("expected a DomainError");
};

describe("updatePaths", () => {
  it("takes the mask's paths, expanding a message path to its leaves and accepting camelCase", () => {
    expect([...updatePaths(mask("name", "prefs"), spec, [])]).toEqual(["name", "prefs.a", "prefs.b"]);
    expect([...updatePaths(mask("prefs.b"), spec, ["name"])]).toEqual(["prefs.b"]);
    expect([...updatePaths(mask("displayName"), spec, [])]).toEqual(["display_name"]);
  });

  it("falls back to the populated fields without a mask, and `*` means every updatable leaf", () => {
    expect([...updatePaths(undefined, spec, ["prefs.a"])]).toEqual(["prefs.a"]);
    expect([...updatePaths(mask(" "), spec, ["name"])]).toEqual(["name"]);
    expect([...updatePaths(mask("*"), spec, [])]).toEqual(spec.updatable);
  });

  it("skips read-only paths, so a client may send back what it read (AIP-203)", () => {
    expect([...updatePaths(mask("id", "name", "prefs.time"), spec, [])]).toEqual(["name"]);
    // `prefs` stands for its updatable leaves only.
    expect([...updatePaths(mask("prefs"), spec, [])]).toEqual(["prefs.a", "prefs.b"]);
  });

  it("refuses a mask of read-only paths only, unknown and mixed `*` paths, and an update of nothing", () => {
    expect(problem(() => updatePaths(mask("id"), spec, []))).toEqual({
      field: "update_mask",
      description: "nothing to update: id cannot be changed (read-only)",
    });
    expect(problem(() => updatePaths(mask("prefs.time"), spec, []))?.description).toMatch(/read-only/);
    expect(problem(() => updatePaths(mask("nope"), spec, []))?.description).toMatch(
      /not an updatable field; updatable: name/,
    );
    expect(problem(() => updatePaths(mask("*", "name"), spec, []))?.description).toMatch(/only path/);
    expect(problem(() => updatePaths(undefined, spec, []))?.description).toMatch(/nothing to update/);
  });
});
