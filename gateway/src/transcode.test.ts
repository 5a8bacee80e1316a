import { create, fromJson, toJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DomainError } from "@zero/kit/errors";
import { AuthService, LoginResponseSchema, RegisterRequestSchema } from "@zero/proto/zero/auth/v1/auth_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { LibraryService, libraryMessage, libraryRegistry } from "../test/fixtures/library-service.js";
import { findMissingRequiredFields } from "./required-fields.js";
import { createRouteTable } from "./route-table.js";
import { transcodeRequest, transcodeResponse } from "./transcode.js";

const table = createRouteTable([AuthService, EchoService, LibraryService]);

function routeFor(method: string, path: string) {
  const found = table.lookup(method, path);
  if (found.kind !== "found") throw new Error(`no route for ${method} ${path}`);
  return found;
}

function transcode(method: string, pathAndQuery: string, body?: JsonValue): Record<string, unknown> {
  const url = new URL(pathAndQuery, "http://gateway");
  const { route, bindings } = routeFor(method, url.pathname);
  const message = transcodeRequest(route, { bindings, query: url.searchParams, body }, libraryRegistry);
  return toJson(route.method.input, message, { registry: libraryRegistry }) as Record<string, unknown>;
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
      transcode("POST", "/v1/auth/register", {
        email: "a@b.c",
        password: "x",
        first_name: "A",
        lastName: "B",
      }),
    ).toEqual({
      email: "a@b.c",
      password: "x",
      firstName: "A",
      lastName: "B",
    });
  });

  it("treats a missing body as an empty message", () => {
    expect(transcode("POST", "/v1/echo")).toEqual({});
  });

  it("names every unknown field with its path", () => {
    const violations = violationsOf(() =>
      transcode("POST", "/v1/auth/register", { email: "a", colour: "red", extra: 1 }),
    );
    expect(violations).toEqual([
      { field: "colour", description: "unknown field" },
      { field: "extra", description: "unknown field" },
    ]);
    const nested = violationsOf(() =>
      transcode("POST", "/v1/shelves/1/books", { title: "T", shelf: { id: "1", colour: "red" } }),
    );
    expect(nested).toEqual([{ field: "shelf.colour", description: "unknown field" }]);
  });

  it("rejects a body that is not an object", () => {
    expect(() => transcode("POST", "/v1/echo", ["a"])).toThrow("must be a JSON object");
    expect(() => transcode("POST", "/v1/echo", "text")).toThrow("must be a JSON object");
  });

  it("reports a wrongly typed field", () => {
    const violations = violationsOf(() => transcode("POST", "/v1/echo", { message: 12 }));
    expect(violations).toHaveLength(1);
    expect(violations[0]?.field).toBe("message");
  });

  it("maps body <field> onto that field, with path variables beside it", () => {
    expect(
      transcode("POST", "/v1/shelves/7/books", { title: "Dune", pages: "412", genre: "GENRE_FICTION" }),
    ).toEqual({
      parent: "shelves/7",
      book: { title: "Dune", pages: "412", genre: "GENRE_FICTION" },
    });
  });

  it("rejects a body field value that conflicts with a nested path variable", () => {
    expect(
      violationsOf(() =>
        transcode("PATCH", "/v1/shelves/1/books/2", { name: "shelves/1/books/3", title: "x" }),
      ),
    ).toEqual([{ field: "book.name", description: 'conflicts with the URL path value "shelves/1/books/2"' }]);
  });

  it("fills a nested path variable inside the body field", () => {
    expect(transcode("PATCH", "/v1/shelves/1/books/2", { title: "New" })).toEqual({
      book: { name: "shelves/1/books/2", title: "New" },
    });
  });

  it("rejects a body * field that conflicts with the path", () => {
    expect(
      violationsOf(() => transcode("POST", "/v1/shelves/1/books/2:move", { name: "shelves/9/books/9" })),
    ).toEqual([{ field: "name", description: 'conflicts with the URL path value "shelves/1/books/2"' }]);
    // The same value twice is not a conflict.
    expect(
      transcode("POST", "/v1/shelves/1/books/2:move", {
        name: "shelves/1/books/2",
        destination: "shelves/3",
      }),
    ).toEqual({
      name: "shelves/1/books/2",
      destination: "shelves/3",
    });
  });
});

describe("transcodeRequest: path and query", () => {
  it("binds nested path fields", () => {
    expect(transcode("GET", "/v1/shelves/9")).toEqual({ shelf: { id: "9" } });
    expect(transcode("GET", "/v1/files/a/b%2Fc")).toEqual({ path: "a/b%2Fc" });
  });

  it("binds scalars, enums by name or number, repeated and nested query parameters", () => {
    expect(
      transcode(
        "GET",
        "/v1/shelves/1/books?page_size=10&pageToken=t&genre=GENRE_SCIENCE&tags=a&tags=b&filter.author=Le%20Guin" +
          "&filter.shelf.id=s&ids=1&ids=2&available=true",
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
    });
    expect(transcode("GET", "/v1/shelves/1/books?genre=1")).toMatchObject({ genre: "GENRE_FICTION" });
  });

  it("binds well-known types from their JSON string forms", () => {
    expect(transcode("GET", "/v1/shelves/1/books?after=2026-01-02T03:04:05Z&min_pages=100")).toMatchObject({
      after: "2026-01-02T03:04:05Z",
      minPages: 100,
    });
  });

  it("rejects unknown, malformed and misplaced parameters, all at once", () => {
    const violations = violationsOf(() =>
      transcode(
        "GET",
        "/v1/shelves/1/books?colour=red&page_size=ten&genre=GENRE_POETRY&available=maybe&parent=x&page_token=a&page_token=b" +
          "&filter=x&books.title=t&filter.nope=1&after=yesterday",
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
    ]);
    expect(violations[0]?.description).toBe("unknown query parameter");
    expect(violations[4]?.description).toBe("this field is taken from the URL path");
    expect(violations[5]?.description).toBe("given 2 times but the field is not repeated");
  });

  it("rejects query parameters on a body * route and on the body field", () => {
    expect(violationsOf(() => transcode("POST", "/v1/echo?message=x", { message: "y" }))[0]?.field).toBe(
      "message",
    );
    expect(violationsOf(() => transcode("POST", "/v1/shelves/1/books?book.title=x", { title: "y" }))).toEqual(
      [{ field: "book.title", description: "this field is taken from the request body" }],
    );
    expect(transcode("POST", "/v1/shelves/1/books?request_id=r1", { title: "y" })).toMatchObject({
      requestId: "r1",
    });
  });
});

describe("transcodeResponse", () => {
  it("emits zero values", () => {
    const { route } = routeFor("POST", "/v1/auth/login");
    const json = transcodeResponse(route, create(LoginResponseSchema, { accessToken: "t" }));
    expect(json).toEqual({
      accessToken: "t",
      tokenType: "",
      expiresIn: 0,
      refreshToken: "",
      refreshExpiresIn: 0,
      token: "",
    });
  });

  it("honours response_body", () => {
    const { route } = routeFor("GET", "/v1/shelves/1");
    const response = fromJson(libraryMessage("GetShelfResponse"), { shelf: { id: "1", theme: "sf" } });
    expect(transcodeResponse(route, response)).toEqual({ id: "1", theme: "sf" });
    const empty = fromJson(libraryMessage("GetShelfResponse"), {});
    expect(transcodeResponse(route, empty)).toEqual({ id: "", theme: "" });
  });
});

describe("findMissingRequiredFields", () => {
  it("lists missing REQUIRED fields with nested paths", () => {
    expect(
      findMissingRequiredFields(RegisterRequestSchema, create(RegisterRequestSchema, { email: "a" })),
    ).toEqual([{ field: "password", description: "required field is missing" }]);
    const { route, bindings } = routeFor("POST", "/v1/shelves/1/books");
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
