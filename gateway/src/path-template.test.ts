import { describe, expect, it } from "vitest";
import {
  PathDecodeError,
  PathTemplateError,
  compareSpecificity,
  decodeSegment,
  matchPathTemplate,
  parsePathTemplate,
  splitPath,
  templateShape,
} from "./path-template.js";

function match(template: string, path: string): Record<string, string> | undefined {
  const split = splitPath(path);
  if (!split) return undefined;
  const bindings = matchPathTemplate(parsePathTemplate(template), split);
  return bindings && Object.fromEntries(bindings);
}

describe("parsePathTemplate", () => {
  it("parses literal segments", () => {
    const t = parsePathTemplate("/v1/auth/register");
    expect(t.segments).toEqual([
      { kind: "literal", value: "v1" },
      { kind: "literal", value: "auth" },
      { kind: "literal", value: "register" },
    ]);
    expect(t.variables).toEqual([]);
    expect(t.verb).toBeUndefined();
  });

  it("parses {field} as a single-segment variable", () => {
    const t = parsePathTemplate("/v1/users/{user_id}");
    expect(t.segments[2]).toEqual({ kind: "wildcard" });
    expect(t.variables).toEqual([{ fieldPath: ["user_id"], start: 2, end: 3, multiSegment: false }]);
  });

  it("parses nested field paths", () => {
    const t = parsePathTemplate("/v1/shelves/{shelf.id}/books/{book.shelf.id}");
    expect(t.variables.map((v) => v.fieldPath)).toEqual([
      ["shelf", "id"],
      ["book", "shelf", "id"],
    ]);
  });

  it("parses {field=segments} with * and literals", () => {
    const t = parsePathTemplate("/v1/{name=shelves/*/books/*}");
    expect(t.segments.map((s) => s.kind)).toEqual(["literal", "literal", "wildcard", "literal", "wildcard"]);
    expect(t.variables).toEqual([{ fieldPath: ["name"], start: 1, end: 5, multiSegment: true }]);
  });

  it("treats {field=*} as single-segment", () => {
    expect(parsePathTemplate("/v1/{name=*}").variables[0]?.multiSegment).toBe(false);
  });

  it("parses ** alone and inside a variable", () => {
    expect(parsePathTemplate("/v1/files/**").segments[2]).toEqual({ kind: "deep-wildcard" });
    const t = parsePathTemplate("/v1/files/{path=**}");
    expect(t.variables).toEqual([{ fieldPath: ["path"], start: 2, end: 3, multiSegment: true }]);
  });

  it("parses a custom verb", () => {
    const t = parsePathTemplate("/v1/{name=orders/*}:cancel");
    expect(t.verb).toBe("cancel");
    expect(t.segments).toHaveLength(3);
    expect(parsePathTemplate("/v1/{path=**}:undelete").verb).toBe("undelete");
    expect(parsePathTemplate("/v1/books:batchGet").segments.at(-1)).toEqual({
      kind: "literal",
      value: "books",
    });
  });

  it.each([
    ["v1/users", "must start with '/'"],
    ["/v1/{name", "unclosed '{'"],
    ["/v1/{a={b}}", "must not contain another variable"],
    ["/v1/{1name}", "invalid field path"],
    ["/v1/{a.}", "invalid field path"],
    ["/v1//users", "empty segment"],
    ["/v1/users/", "trailing '/'"],
    ["/v1/**/users", "'**' must be the last segment"],
    ["/v1/{a}/{a}", "bound twice"],
    ["/v1/{name=}", "empty template"],
    ["/v1/users:", "invalid verb"],
    ["/v1/us er", "invalid literal"],
    ["/", "empty segment"],
  ])("rejects %s", (template, reason) => {
    expect(() => parsePathTemplate(template)).toThrow(PathTemplateError);
    expect(() => parsePathTemplate(template)).toThrow(reason);
  });
});

describe("matchPathTemplate", () => {
  it("matches literals exactly", () => {
    expect(match("/v1/auth/register", "/v1/auth/register")).toEqual({});
    expect(match("/v1/auth/register", "/v1/auth/login")).toBeUndefined();
    expect(match("/v1/auth/register", "/v1/auth/register/")).toBeUndefined();
    expect(match("/v1/auth/register", "/v1/auth")).toBeUndefined();
  });

  it("binds single-segment and nested variables", () => {
    expect(match("/v1/users/{user_id}", "/v1/users/42")).toEqual({ user_id: "42" });
    expect(match("/v1/shelves/{shelf.id}", "/v1/shelves/s1")).toEqual({ "shelf.id": "s1" });
    expect(match("/v1/users/{user_id}", "/v1/users/")).toBeUndefined();
  });

  it("binds multi-segment variables with their literals", () => {
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2")).toEqual({
      name: "shelves/1/books/2",
    });
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/notes/2")).toBeUndefined();
    expect(match("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books")).toBeUndefined();
  });

  it("matches ** against zero or more segments", () => {
    expect(match("/v1/files/{path=**}", "/v1/files/a/b/c.txt")).toEqual({ path: "a/b/c.txt" });
    expect(match("/v1/files/{path=**}", "/v1/files/a")).toEqual({ path: "a" });
    expect(match("/v1/files/{path=**}", "/v1/files")).toEqual({ path: "" });
    expect(match("/v1/files/**", "/v1/files/x/y")).toEqual({});
    expect(match("/v1/{name=files/**}", "/v1/files/x/y")).toEqual({ name: "files/x/y" });
  });

  it("matches a custom verb and only with it", () => {
    expect(match("/v1/{name=orders/*}:cancel", "/v1/orders/7:cancel")).toEqual({ name: "orders/7" });
    expect(match("/v1/{name=orders/*}:cancel", "/v1/orders/7")).toBeUndefined();
    expect(match("/v1/{name=orders/*}:cancel", "/v1/orders/7:refund")).toBeUndefined();
    expect(match("/v1/{path=**}:undelete", "/v1/a/b:undelete")).toEqual({ path: "a/b" });
    // A colon inside a value is kept when the template has no verb.
    expect(match("/v1/things/{id}", "/v1/things/a:b")).toEqual({ id: "a:b" });
    expect(match("/v1/things/{id}:run", "/v1/things/a:b:run")).toEqual({ id: "a:b" });
  });

  it("decodes single-segment variables fully, %2F included", () => {
    expect(match("/v1/users/{id}", "/v1/users/a%2Fb")).toEqual({ id: "a/b" });
    expect(match("/v1/users/{id}", "/v1/users/caf%C3%A9%20au%20lait")).toEqual({ id: "café au lait" });
    expect(match("/v1/users/{id=*}", "/v1/users/a%2fb")).toEqual({ id: "a/b" });
  });

  it("decodes multi-segment variables except %2F and %2f", () => {
    expect(match("/v1/files/{path=**}", "/v1/files/dir/a%2Fb%20c")).toEqual({ path: "dir/a%2Fb c" });
    expect(match("/v1/{name=shelves/*}", "/v1/shelves/x%2fy")).toEqual({ name: "shelves/x%2fy" });
  });

  it("compares literals after decoding", () => {
    expect(match("/v1/echo", "/v1/%65cho")).toEqual({});
  });

  it("rejects malformed percent-encoding in a captured segment", () => {
    expect(() => match("/v1/users/{id}", "/v1/users/%zz")).toThrow(PathDecodeError);
    expect(() => match("/v1/users/{id}", "/v1/users/%C3")).toThrow(PathDecodeError);
    expect(() => match("/v1/files/{path=**}", "/v1/files/a/%E0%A4%A")).toThrow(PathDecodeError);
  });

  it("does not match paths that do not start with /", () => {
    expect(splitPath("v1/users")).toBeUndefined();
  });
});

describe("decodeSegment", () => {
  it("leaves plain text alone", () => {
    expect(decodeSegment("abc", false)).toBe("abc");
  });
  it("keeps encoded slashes when asked", () => {
    expect(decodeSegment("a%2Fb%2fc%41", true)).toBe("a%2Fb%2fcA");
    expect(decodeSegment("a%2Fb%2fc%41", false)).toBe("a/b/cA");
  });
});

describe("compareSpecificity", () => {
  it("puts literal segments before wildcards and ** last", () => {
    const templates = ["/v1/{path=**}", "/v1/{id}", "/v1/me", "/v1/{id}:run"].map(parsePathTemplate);
    templates.sort(compareSpecificity);
    expect(templates.map(templateShape)).toEqual(["/v1/me", "/v1/*:run", "/v1/*", "/v1/**"]);
  });
});
