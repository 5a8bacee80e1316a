import { create, createRegistry, toJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DomainError } from "@zero/kit/errors";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import {
  EchoValuesResponseSchema,
  GetShelfResponseSchema,
  TranscodingService,
  UpdateBookRequestSchema,
  file_zero_testing_v1_transcoding,
} from "@zero/proto/zero/testing/v1/transcoding_pb";
import { findMissingRequiredFields, type PartialUpdate } from "./required-fields.js";
import { createRouteTable, type Route } from "./route-table.js";
import { transcodeRequest, transcodeResponse } from "./transcode.js";

// Every google.api.http form, exercised through zero.testing.v1.TranscodingService (the contract of
// the diagnostic echo service): the same routes a curl user tries against the running platform.

const table = createRouteTable([EchoService, TranscodingService]);
const registry = createRegistry(file_zero_testing_v1_transcoding);
const t = "/v1/transcoding";

function routeFor(method: string, path: string) {
  const found = table.lookup(method, path);
  if (found.kind !== "found") throw new Error(`no route for ${method} ${path}`);
  return found;
}

function transcode(method: string, pathAndQuery: string, body?: JsonValue): Record<string, unknown> {
  const url = new URL(pathAndQuery, "http://gateway");
  const { route, bindings } = routeFor(method, url.pathname);
  const message = transcodeRequest(route, { bindings, query: url.searchParams, body }, registry);
  return toJson(route.method.input, message, { registry }) as Record<string, unknown>;
}

function violationsOf(fn: () => unknown): { field: string; description: string }[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof DomainError && e.code === "invalid_argument") return e.fieldViolations ?? [];
    throw e;
  }
  throw new Error("expected invalid_argument");
}

describe("transcodeRequest: body", () => {
  it("maps body * onto the whole request, camelCase and proto names alike", () => {
    expect(
      transcode("POST", `${t}/values`, {
        int64_value: "5",
        boolValue: false,
        field_mask: "title,publishTime",
        genres: ["GENRE_FICTION", 2],
      }),
    ).toEqual({
      int64Value: "5",
      boolValue: false,
      fieldMask: "title,publishTime",
      genres: ["GENRE_FICTION", "GENRE_SCIENCE"],
    });
  });

  it("takes every well-known type and map in its proto3 JSON form", () => {
    const values = {
      timestamp: "2026-01-02T03:04:05.500Z",
      duration: "1.500s",
      fieldMask: "title,shelf.id",
      boolValue: true,
      int64Value: "-9007199254740993",
      stringValue: "",
      doubleValue: 1.5,
      uint32Value: 7,
      bytesValue: "AQID",
      int64: "9223372036854775807",
      uint64: "18446744073709551615",
      float: "NaN",
      bytes: "/w==",
      genre: "GENRE_SCIENCE",
      labels: { lang: "en" },
      counts: { "1": "2", "-3": "4" },
      struct: { a: [1, "b", null, { c: true }] },
      value: null,
      times: ["2026-01-01T00:00:00Z"],
    };
    expect(transcode("POST", `${t}/values`, values)).toEqual({ ...values, value: null });
  });

  it("treats a missing body as an empty message", () => {
    expect(transcode("POST", "/v1/echo")).toEqual({});
  });

  it("names every unknown field with its path", () => {
    expect(
      violationsOf(() => transcode("POST", `${t}/values`, { colour: "red", extra: 1, genre: 1 })),
    ).toEqual([
      { field: "colour", description: "unknown field" },
      { field: "extra", description: "unknown field" },
    ]);
    const nested = violationsOf(() =>
      transcode("POST", `${t}/shelves/1/books`, { title: "T", shelf: { id: "1", colour: "red" } }),
    );
    expect(nested).toEqual([{ field: "shelf.colour", description: "unknown field" }]);
  });

  it("rejects a body that is not an object", () => {
    expect(() => transcode("POST", "/v1/echo", ["a"])).toThrow("must be a JSON object");
    expect(() => transcode("POST", "/v1/echo", "text")).toThrow("must be a JSON object");
    expect(() => transcode("POST", `${t}/shelves/1/books`, [1])).toThrow("must be a JSON object");
  });

  it("reports a wrongly typed field", () => {
    const violations = violationsOf(() => transcode("POST", "/v1/echo", { message: 12 }));
    expect(violations).toHaveLength(1);
    expect(violations[0]?.field).toBe("message");
    expect(violationsOf(() => transcode("POST", `${t}/values`, { timestamp: "yesterday" }))).toHaveLength(1);
  });

  it("maps body <field> onto that field, with path variables beside it", () => {
    expect(
      transcode("POST", `${t}/shelves/7/books`, { title: "Dune", pages: "412", genre: "GENRE_FICTION" }),
    ).toEqual({
      parent: "shelves/7",
      book: { title: "Dune", pages: "412", genre: "GENRE_FICTION" },
    });
  });

  it("rejects a body field value that conflicts with a nested path variable", () => {
    expect(
      violationsOf(() =>
        transcode("PATCH", `${t}/shelves/1/books/2`, { name: "shelves/1/books/3", title: "x" }),
      ),
    ).toEqual([{ field: "book.name", description: 'conflicts with the URL path value "shelves/1/books/2"' }]);
  });

  it("fills a nested path variable inside the body field", () => {
    expect(transcode("PATCH", `${t}/shelves/1/books/2`, { title: "New" })).toMatchObject({
      book: { name: "shelves/1/books/2", title: "New" },
    });
  });

  it("rejects a body * field that conflicts with the path", () => {
    expect(
      violationsOf(() => transcode("POST", `${t}/shelves/1/books/2:move`, { name: "shelves/9/books/9" })),
    ).toEqual([{ field: "name", description: 'conflicts with the URL path value "shelves/1/books/2"' }]);
    // The same value twice is not a conflict.
    expect(
      transcode("POST", `${t}/shelves/1/books/2:move`, {
        name: "shelves/1/books/2",
        destination: "shelves/3",
      }),
    ).toEqual({ name: "shelves/1/books/2", destination: "shelves/3" });
  });
});

describe("transcodeRequest: path and query", () => {
  it("binds nested path fields and decodes per the HttpRule percent-encoding rules", () => {
    expect(transcode("GET", `${t}/shelves/9`)).toEqual({ shelf: { id: "9" } });
    // Multi-segment (`**`, `name=shelves/*/books/*`): %2F stays encoded, other escapes decode.
    expect(transcode("GET", `${t}/files/a/b%2Fc/d%20e`)).toEqual({ path: "a/b%2Fc/d e" });
    expect(transcode("GET", `${t}/shelves/1/books/2%2f3`)).toEqual({ name: "shelves/1/books/2%2f3" });
    // Single-segment (`{name}`): everything decodes, %2F included.
    expect(transcode("GET", `${t}/books/shelves%2F1%2Fbooks%2F2`)).toEqual({ name: "shelves/1/books/2" });
    expect(transcode("GET", `${t}/shelves/caf%C3%A9`)).toEqual({ shelf: { id: "café" } });
  });

  it("binds scalars, enums by name or number, repeated, nested, map and WKT query parameters", () => {
    expect(
      transcode(
        "GET",
        `${t}/shelves/1/books?page_size=10&pageToken=t&genre=GENRE_SCIENCE&tags=a&tags=b&filter.author=Le%20Guin` +
          "&filter.shelf.id=s&ids=1&ids=2&available=true&labels[lang]=en&labels%5Bformat%5D=paper" +
          "&after=2026-01-02T03:04:05Z&min_pages=100&max_age=3600s&read_mask=title,publish_time" +
          "&genres=GENRE_FICTION&genres=2",
      ),
    ).toEqual({
      parent: "shelves/1",
      pageSize: 10,
      pageToken: "t",
      genre: "GENRE_SCIENCE",
      tags: ["a", "b"],
      filter: { author: "Le Guin", shelf: { id: "s" } },
      ids: ["1", "2"],
      available: true,
      labels: { lang: "en", format: "paper" },
      after: "2026-01-02T03:04:05Z",
      minPages: 100,
      maxAge: "3600s",
      readMask: "title,publishTime",
      genres: ["GENRE_FICTION", "GENRE_SCIENCE"],
    });
    expect(transcode("GET", `${t}/shelves/1/books?genre=1`)).toMatchObject({ genre: "GENRE_FICTION" });
  });

  it("binds every query form of the GET binding of EchoValues", () => {
    expect(
      transcode(
        "GET",
        `${t}/values?counts[1]=2&counts[-3]=4&bool_value=false&int64Value=7&bytes_value=AQID&float=-Infinity` +
          "&times=2026-01-01T00:00:00Z&times=2026-01-02T00:00:00Z&duration=0.5s&uint64=18446744073709551615",
      ),
    ).toEqual({
      counts: { "1": "2", "-3": "4" },
      boolValue: false,
      int64Value: "7",
      bytesValue: "AQID",
      float: "-Infinity",
      times: ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
      duration: "0.500s",
      uint64: "18446744073709551615",
    });
  });

  it("rejects unknown, malformed and misplaced parameters, all at once", () => {
    const violations = violationsOf(() =>
      transcode(
        "GET",
        `${t}/shelves/1/books?colour=red&page_size=ten&genre=GENRE_POETRY&available=maybe&parent=x&page_token=a&page_token=b` +
          "&filter=x&books.title=t&filter.nope=1&after=yesterday&labels=x&labels[a]=1&labels[a]=2&tags[x]=1" +
          "&max_age=soon",
      ),
    );
    expect(violations.map((v) => v.field)).toEqual([
      "colour",
      "page_size",
      "genre",
      "available",
      "parent",
      "page_token",
      "filter",
      "books.title",
      "filter.nope",
      "after",
      "labels",
      "labels[a]",
      "tags[x]",
      "max_age",
    ]);
    expect(violations[0]?.description).toBe("unknown query parameter");
    expect(violations[4]?.description).toBe("this field is taken from the URL path");
    expect(violations[5]?.description).toBe("given 2 times but the field is not repeated");
    expect(violations[10]?.description).toBe("a map field is set one entry at a time: labels[key]=value");
    expect(violations[11]?.description).toBe("given 2 times but a map key takes one value");
    expect(violations[12]?.description).toBe("tags is not a map field");
  });

  it("rejects an invalid map key or value", () => {
    expect(violationsOf(() => transcode("GET", `${t}/values?counts[x]=1`)).map((v) => v.field)).toEqual([
      "counts[x]",
    ]);
    expect(violationsOf(() => transcode("GET", `${t}/values?counts[1]=one`)).map((v) => v.field)).toEqual([
      "counts[1]",
    ]);
  });

  it("rejects query parameters on a body * route and on the body field", () => {
    expect(violationsOf(() => transcode("POST", "/v1/echo?message=x", { message: "y" }))[0]?.field).toBe(
      "message",
    );
    expect(
      violationsOf(() => transcode("POST", `${t}/shelves/1/books?book.title=x`, { title: "y" })),
    ).toEqual([{ field: "book.title", description: "this field is taken from the request body" }]);
    expect(transcode("POST", `${t}/shelves/1/books?request_id=r1`, { title: "y" })).toMatchObject({
      requestId: "r1",
    });
  });
});

describe("transcodeRequest: PATCH with a field mask", () => {
  it("fills the mask from the body's fields (proto names, nested leaves) when none is sent", () => {
    expect(
      transcode("PATCH", `${t}/shelves/1/books/2`, {
        title: "New",
        shelf: { id: "s" },
        labels: { a: "b" },
        publishTime: "2026-01-01T00:00:00Z",
        tags: [],
      }),
    ).toMatchObject({
      book: { name: "shelves/1/books/2", title: "New" },
      updateMask: "title,shelf.id,labels,publishTime,tags",
    });
    // An empty object replaces the whole sub-message.
    expect(transcode("PATCH", `${t}/shelves/1/books/2`, { shelf: {} })).toMatchObject({
      updateMask: "shelf",
    });
  });

  it("keeps the mask the client sent, in either naming style", () => {
    expect(
      transcode("PATCH", `${t}/shelves/1/books/2?update_mask=publish_time,title`, { title: "x", pages: "3" }),
    ).toMatchObject({ updateMask: "publishTime,title" });
    expect(
      transcode("PATCH", `${t}/shelves/1/books/2?updateMask=pages`, { title: "x", pages: "3" }),
    ).toMatchObject({ updateMask: "pages" });
  });

  it("checks REQUIRED fields of the patched message only where the mask covers them", () => {
    const missing = (pathAndQuery: string, body: JsonValue) => {
      const url = new URL(pathAndQuery, "http://gateway");
      const { route, bindings } = routeFor("PATCH", url.pathname);
      const message = transcodeRequest(route, { bindings, query: url.searchParams, body });
      return findMissingRequiredFields(route.method.input, message, partialOf(route, message));
    };
    expect(missing(`${t}/shelves/1/books/2`, { pages: "3" })).toEqual([]);
    expect(missing(`${t}/shelves/1/books/2?update_mask=title`, { pages: "3" })).toEqual([
      { field: "book.title", description: "required field is missing" },
    ]);
    expect(missing(`${t}/shelves/1/books/2?update_mask=*`, { pages: "3" })).toEqual([
      { field: "book.title", description: "required field is missing" },
    ]);
  });
});

function partialOf(route: Route, message: ReturnType<typeof transcodeRequest>): PartialUpdate | undefined {
  if (!route.bodyField) return undefined;
  const request = message as unknown as { updateMask?: { paths: string[] } };
  return { field: route.bodyField, mask: request.updateMask?.paths ?? [] };
}

describe("transcodeResponse", () => {
  it("emits zero values, int64 as strings and enums by name", () => {
    const { route } = routeFor("POST", `${t}/values`);
    const json = transcodeResponse(
      route,
      create(EchoValuesResponseSchema, { received: { int64: 5n, genre: 1 } }),
      registry,
    ) as Record<string, unknown>;
    expect(json).toMatchObject({
      int64: "5",
      uint64: "0",
      float: 0,
      bytes: "",
      genre: "GENRE_FICTION",
      genres: [],
      labels: {},
      counts: {},
      times: [],
    });
  });

  it("honours response_body", () => {
    const { route } = routeFor("GET", `${t}/shelves/1`);
    const response = create(GetShelfResponseSchema, { shelf: { id: "1", theme: "sf" } });
    expect(transcodeResponse(route, response)).toEqual({ id: "1", theme: "sf" });
    const empty = create(GetShelfResponseSchema, {});
    expect(transcodeResponse(route, empty)).toEqual({ id: "", theme: "" });
  });
});

describe("findMissingRequiredFields", () => {
  it("lists missing REQUIRED fields with nested paths", () => {
    expect(findMissingRequiredFields(UpdateBookRequestSchema, create(UpdateBookRequestSchema, {}))).toEqual([
      { field: "book", description: "required field is missing" },
    ]);
    const { route, bindings } = routeFor("POST", `${t}/shelves/1/books`);
    const message = transcodeRequest(route, { bindings, query: new URLSearchParams(), body: { pages: "3" } });
    expect(findMissingRequiredFields(route.method.input, message)).toEqual([
      { field: "book.title", description: "required field is missing" },
    ]);
    const none = transcodeRequest(route, { bindings, query: new URLSearchParams(), body: undefined });
    expect(findMissingRequiredFields(route.method.input, none)).toEqual([
      { field: "book", description: "required field is missing" },
    ]);
  });
});
