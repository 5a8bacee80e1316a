import { describe, expect, it } from "vitest";
import { firstDuplicateKey } from "./json-duplicate-keys.js";

describe("firstDuplicateKey", () => {
  it("finds a name given twice in one object, at any depth, however it is escaped", () => {
    expect(firstDuplicateKey('{"title":"t","title":"u"}')).toBe("title");
    expect(firstDuplicateKey('{"a":{"b":1, "b" :2}}')).toBe("b");
    expect(firstDuplicateKey('{"a":1,"\\u0061":2}')).toBe("a");
    expect(firstDuplicateKey('[{"x":1},{"y":[{"z":1,"z":2}]}]')).toBe("z");
  });

  it("lets the same name appear in different objects, and strings that look like keys", () => {
    expect(firstDuplicateKey('{"a":{"a":1},"b":[{"a":2},{"a":3}]}')).toBeUndefined();
    expect(firstDuplicateKey('{"a":"a","b":["a","a"],"c":"\\"a\\":"}')).toBeUndefined();
    expect(firstDuplicateKey("[]")).toBeUndefined();
    expect(firstDuplicateKey('"just a string"')).toBeUndefined();
  });
});
