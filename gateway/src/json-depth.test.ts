import { describe, expect, it } from "vitest";
import { jsonNestingDepth } from "./json-depth.js";

describe("jsonNestingDepth", () => {
  it("counts objects and arrays, not brackets inside strings", () => {
    expect(jsonNestingDepth("1", 64)).toBe(0);
    expect(jsonNestingDepth('{"a":[1,{"b":[]}]}', 64)).toBe(4);
    expect(jsonNestingDepth('{"a":"[[[[{{{{"}', 64)).toBe(1);
    expect(jsonNestingDepth('{"a":"\\"[[[["}', 64)).toBe(1);
    expect(jsonNestingDepth('[{"x":"\\\\"},[[]]]', 64)).toBe(3);
  });

  it("stops as soon as the limit is passed", () => {
    expect(jsonNestingDepth("[".repeat(1_000_000), 64)).toBe(65);
  });
});
