import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens } from "./fixtures/tokens.js";

// Every google.api.http form and every strictness rule, through the gateway over real HTTP to the
// diagnostic echo service (zero.testing.v1.TranscodingService answers with what it received).

const logger = createLogger("gateway-transcoding-test", { level: "error" });
const t = "/v1/transcoding";

let echo: Server;
let gateway: Gateway;

beforeAll(async () => {
  const tokens = await createTestTokens();
  echo = await startEchoServer({ logger, verifier: tokens.verifier });
  gateway = await startGateway({
    services: [EchoService, TranscodingService],
    upstreamUrls: { testing: echo.url },
    logger,
    port: 0,
    host: "127.0.0.1",
    verifier: tokens.verifier,
    maxBodyBytes: 64 * 1024,
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

interface Answer {
  status: number;
  headers: Headers;
  json: unknown;
}

async function call(
  method: string,
  path: string,
  init: { body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers =
    init.body === undefined ? init.headers : { "content-type": "application/json", ...init.headers };
  const response = await fetch(gateway.url + path, {
    method,
    ...(headers === undefined ? {} : { headers }),
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: text === "" ? undefined : JSON.parse(text),
  };
}

interface ErrorBody {
  error: { code: number; status: string; message: string; details: Record<string, unknown>[] };
}

function expectError(answer: Answer, code: number, status: string): ErrorBody["error"] {
  expect(answer.status).toBe(code);
  expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
  const body = answer.json as ErrorBody;
  expect(body.error).toMatchObject({ code, status });
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

function violations(error: ErrorBody["error"]): { field: string; description: string }[] {
  const badRequest = error.details.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
  return (badRequest?.["fieldViolations"] as { field: string; description: string }[] | undefined) ?? [];
}

const emptyBook = {
  name: "",
  title: "",
  pages: "0",
  genre: "GENRE_UNSPECIFIED",
  tags: [],
  available: false,
  rating: 0,
  labels: {},
};

describe("every google.api.http form over REST", () => {
  it("nested path field + response_body: GET /shelves/{shelf.id}", async () => {
    const answer = await call("GET", `${t}/shelves/7`);
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ id: "7", theme: "" });
  });

  it("multi-segment capture, additional_bindings, zero values in the answer", async () => {
    const canonical = await call("GET", `${t}/shelves/1/books/2`);
    expect(canonical.status).toBe(200);
    expect(canonical.json).toEqual({ ...emptyBook, name: "shelves/1/books/2" });
    // The single-segment binding decodes %2F; the multi-segment one keeps it.
    expect((await call("GET", `${t}/books/shelves%2F1%2Fbooks%2F2`)).json).toMatchObject({
      name: "shelves/1/books/2",
    });
    expect((await call("GET", `${t}/shelves/1/books/a%2Fb`)).json).toMatchObject({
      name: "shelves/1/books/a%2Fb",
    });
  });

  it("`**` capture keeps %2F encoded and decodes the rest", async () => {
    const answer = await call("GET", `${t}/files/docs/a%20b/c%2Fd.txt`);
    expect(answer.json).toEqual({ path: "docs/a b/c%2Fd.txt", segments: ["docs", "a b", "c%2Fd.txt"] });
    expect((await call("GET", `${t}/files`)).json).toEqual({ path: "", segments: [] });
  });

  it("query parameters of every kind", async () => {
    const answer = await call(
      "GET",
      `${t}/shelves/3/books?page_size=5&genre=GENRE_FICTION&tags=a&tags=b&filter.author=Le%20Guin&filter.shelf.id=9` +
        "&ids=1&ids=2&after=2026-01-02T03:04:05Z&min_pages=100&available=true&labels[lang]=en&max_age=60s" +
        "&read_mask=title,publishTime&genres=GENRE_SCIENCE&genres=1",
    );
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      books: [],
      nextPageToken: "",
      received: {
        parent: "shelves/3",
        pageSize: 5,
        genre: "GENRE_FICTION",
        tags: ["a", "b"],
        filter: { author: "Le Guin", shelf: { id: "9", theme: "" } },
        ids: ["1", "2"],
        after: "2026-01-02T03:04:05Z",
        minPages: 100,
        available: true,
        labels: { lang: "en" },
        maxAge: "60s",
        readMask: "title,publishTime",
        genres: ["GENRE_SCIENCE", "GENRE_FICTION"],
      },
    });
  });

  it('body: "book" answers 201 with the service\'s OUTPUT_ONLY fields; request_id from the query', async () => {
    const answer = await call("POST", `${t}/shelves/3/books?request_id=r-1`, {
      body: JSON.stringify({ title: "Dune", publish_time: "1965-08-01T00:00:00Z", isbn: "9780441172719" }),
    });
    expect(answer.status).toBe(201);
    const body = answer.json as { book: Record<string, unknown>; parent: string; requestId: string };
    expect(body).toMatchObject({ parent: "shelves/3", requestId: "r-1" });
    expect(body.book).toMatchObject({
      title: "Dune",
      publishTime: "1965-08-01T00:00:00Z",
      isbn: "9780441172719",
    });
    expect(typeof body.book["createTime"]).toBe("string");
  });

  it("PATCH fills the field mask from the body; a given mask is kept", async () => {
    const filled = await call("PATCH", `${t}/shelves/1/books/2`, {
      body: JSON.stringify({ rating: 4.5, shelf: { theme: "sf" } }),
    });
    expect(filled.status).toBe(200);
    expect(filled.json).toMatchObject({
      book: { name: "shelves/1/books/2", rating: 4.5, shelf: { theme: "sf" } },
      updateMask: "rating,shelf.theme",
    });
    const given = await call("PATCH", `${t}/shelves/1/books/2?update_mask=rating`, {
      body: JSON.stringify({ rating: 1, pages: "3" }),
    });
    expect(given.json).toMatchObject({ updateMask: "rating" });
    // A REQUIRED field named in the mask must be present.
    const cleared = await call("PATCH", `${t}/shelves/1/books/2?update_mask=title`, { body: "{}" });
    expect(violations(expectError(cleared, 400, "INVALID_ARGUMENT"))).toEqual([
      { field: "book.title", description: "required field is missing" },
    ]);
  });

  it("custom verb with body *", async () => {
    const answer = await call("POST", `${t}/shelves/1/books/2:move`, {
      body: JSON.stringify({ destination: "shelves/9", note: "reorg" }),
    });
    expect(answer.json).toEqual({
      name: "shelves/9/books/2",
      previousName: "shelves/1/books/2",
      note: "reorg",
    });
  });

  it("DELETE without a body, custom method PURGE", async () => {
    expect((await call("DELETE", `${t}/shelves/1/books/2?etag=e1`)).json).toEqual({
      name: "shelves/1/books/2",
      etag: "e1",
    });
    expect((await call("PURGE", `${t}/shelves/4?force=true`)).json).toEqual({ shelfId: "4", force: true });
  });

  it("well-known types and maps: POST as a body, GET as query parameters", async () => {
    const values = {
      timestamp: "2026-01-02T03:04:05.500Z",
      duration: "1.500s",
      fieldMask: "title,shelf.id",
      boolValue: false,
      int64Value: "-5",
      uint32Value: 7,
      genre: "GENRE_SCIENCE",
      labels: { a: "b" },
      counts: { "1": "2" },
      struct: { nested: [1, "x", null] },
      times: ["2026-01-01T00:00:00Z"],
    };
    const posted = await call("POST", `${t}/values`, { body: JSON.stringify(values) });
    expect(posted.status).toBe(200);
    expect(posted.json).toMatchObject(values);
    const got = await call(
      "GET",
      `${t}/values?timestamp=2026-01-02T03:04:05.500Z&duration=1.5s&field_mask=title,shelf.id&bool_value=false` +
        "&int64_value=-5&uint32_value=7&genre=GENRE_SCIENCE&labels[a]=b&counts[1]=2&times=2026-01-01T00:00:00Z",
    );
    const { struct: _struct, ...queryable } = values;
    expect(got.json).toMatchObject(queryable);
  });

  it("delivers strings as sent: a leading byte-order mark survives REST → binary → REST", async () => {
    const answer = await call("POST", "/v1/echo", { body: JSON.stringify({ message: "\ufeffhi" }) });
    expect(answer.json).toMatchObject({ message: "\ufeffhi" });
  });

  it("input accepts camelCase and proto names alike", async () => {
    const proto = await call("POST", `${t}/values`, { body: '{"int64_value":"1","bool_value":true}' });
    const camel = await call("POST", `${t}/values`, { body: '{"int64Value":"1","boolValue":true}' });
    expect(proto.json).toEqual(camel.json);
  });

  it("server streaming: NDJSON by default, SSE with Accept: text/event-stream", async () => {
    const ndjson = await fetch(`${gateway.url}${t}/books:watch?count=3&title=T`);
    expect(ndjson.status).toBe(200);
    expect(ndjson.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    const lines = (await ndjson.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { index: number; book: { title: string } });
    expect(lines.map((l) => [l.index, l.book.title])).toEqual([
      [0, "T 0"],
      [1, "T 1"],
      [2, "T 2"],
    ]);
    const sse = await fetch(`${gateway.url}${t}/books:watch?count=2&title=S`, {
      headers: { accept: "text/event-stream" },
    });
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = (await sse.text()).split("\n\n").filter((e) => e !== "");
    expect(events).toHaveLength(2);
    expect(events.every((e) => e.startsWith("data: {"))).toBe(true);
  });

  it("a stream that fails before its first message is a normal error response", async () => {
    const error = expectError(await call("GET", `${t}/books:watch?count=1000`), 400, "INVALID_ARGUMENT");
    expect(violations(error)).toEqual([{ field: "count", description: "must be 0 to 100" }]);
  });

  it("forwards authorization, x-request-id, idempotency-key, user-agent and the client address", async () => {
    const answer = await call("GET", `${t}/headers`, {
      headers: {
        authorization: "Bearer not-checked-for-public-methods",
        "x-request-id": "req-42",
        "idempotency-key": "idem-1",
        "user-agent": "curl/8.0",
        cookie: "session=secret",
      },
    });
    const headers = (answer.json as { headers: Record<string, string> }).headers;
    expect(headers).toEqual({
      "x-request-id": "req-42",
      "idempotency-key": "idem-1",
      "user-agent": "curl/8.0",
      "x-forwarded-for": expect.stringMatching(/^(::ffff:)?127\.0\.0\.1$/) as string,
      authorization: "Bearer",
    });
  });
});

describe("strictness: every refusal is a 4xx in the documented shape", () => {
  it("HEAD answers as GET without the body, over HTTP/1.1 and HTTP/2", async () => {
    const get = await fetch(`${gateway.url}${t}/shelves/7`);
    const head = await fetch(`${gateway.url}${t}/shelves/7`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(get.headers.get("content-length"));
    expect(await head.text()).toBe("");
    const session = http2.connect(gateway.url);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "HEAD", ":path": `${t}/shelves/7` });
        let status = 0;
        let body = "";
        stream.on("response", (headers) => (status = Number(headers[":status"])));
        stream.on("data", (chunk: Buffer) => (body += chunk.toString()));
        stream.on("end", () => resolve({ status, body }));
        stream.on("error", reject);
        stream.end();
      });
      expect(answer).toEqual({ status: 200, body: "" });
    } finally {
      session.close();
    }
  });

  it("unknown route → 404", async () => {
    expectError(await call("GET", `${t}/nothing/here`), 404, "NOT_FOUND");
    expectError(await call("GET", `${t}/shelves/1/books/2/extra/segments/x`), 404, "NOT_FOUND");
  });

  it("known path, wrong method → 405 with every allowed method in Allow", async () => {
    const answer = await call("PUT", `${t}/shelves/1/books/2`, { body: "{}" });
    expectError(answer, 405, "UNIMPLEMENTED");
    expect(answer.headers.get("allow")).toBe("DELETE, GET, HEAD, PATCH");
  });

  it("unknown query parameter or JSON field → 400 naming it", async () => {
    const query = expectError(await call("GET", `${t}/shelves/1?colour=red`), 400, "INVALID_ARGUMENT");
    expect(violations(query)).toEqual([{ field: "colour", description: "unknown query parameter" }]);
    const body = expectError(
      await call("POST", `${t}/shelves/1/books`, {
        body: JSON.stringify({ title: "x", shelf: { colour: 1 } }),
      }),
      400,
      "INVALID_ARGUMENT",
    );
    expect(violations(body)).toEqual([{ field: "shelf.colour", description: "unknown field" }]);
  });

  it("body/path conflict → 400", async () => {
    const error = expectError(
      await call("POST", `${t}/shelves/1/books/2:move`, {
        body: JSON.stringify({ name: "shelves/8/books/8", destination: "shelves/2" }),
      }),
      400,
      "INVALID_ARGUMENT",
    );
    expect(violations(error)[0]).toMatchObject({ field: "name" });
  });

  it("a body on a route without one, malformed JSON, bad UTF-8, bad escapes → 400", async () => {
    expectError(
      await call("GET", `${t}/shelves/1`, { body: "{}" }).catch(() => getWithBody()),
      400,
      "INVALID_ARGUMENT",
    );
    expectError(await call("POST", `${t}/values`, { body: '{"genre": ' }), 400, "INVALID_ARGUMENT");
    const badUtf8 = await fetch(`${gateway.url}${t}/values`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(badUtf8.status).toBe(400);
    expectError(await call("GET", `${t}/books/%E0%A4%A`), 400, "INVALID_ARGUMENT");
    expectError(await call("GET", `${t}/books/%FF`), 400, "INVALID_ARGUMENT");
  });

  it("unsupported content type → 415", async () => {
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "application/json; charset=latin1",
    ]) {
      expectError(
        await call("POST", `${t}/values`, { body: "{}", headers: { "content-type": type } }),
        415,
        "INVALID_ARGUMENT",
      );
    }
  });

  it("a body over the limit → 413", async () => {
    const big = JSON.stringify({ stringValue: "x".repeat(100 * 1024) });
    expectError(await call("POST", `${t}/values`, { body: big }), 413, "INVALID_ARGUMENT");
  });

  it("JSON nested deeper than 64 levels → 400, refused by the gateway itself", async () => {
    const nested = (depth: number): string => "[".repeat(depth - 1) + "]".repeat(depth - 1);
    const tooDeep = await call("POST", `${t}/values`, { body: `{"value":${nested(65)}}` });
    expect(expectError(tooDeep, 400, "INVALID_ARGUMENT").message).toMatch(/deeper than 64/);
    // (Each JSON level inside a google.protobuf.Value is two protobuf messages: services decode
    // up to 100, so 48 levels is as deep as a Value gets end to end.)
    const deep = await call("POST", `${t}/values`, { body: `{"value":${nested(49)}}` });
    expect(deep.status).toBe(200);
    const deepObject = `{"value":${'{"a":'.repeat(47)}1${"}".repeat(47)}}`;
    expect((await call("POST", `${t}/values`, { body: deepObject })).status).toBe(200);
    // Deeper than a Value can go end to end, though under 64: refused here, naming the field,
    // rather than by the service with a message about its binary decoder.
    const tooDeepForValue = await call("POST", `${t}/values`, { body: `{"value":${nested(55)}}` });
    expect(violations(expectError(tooDeepForValue, 400, "INVALID_ARGUMENT"))[0]).toMatchObject({
      field: "value",
      description: expect.stringMatching(/at most 48/) as unknown,
    });
    // A megabyte-sized pile of brackets is refused quickly, without a stack overflow.
    const pile = await call("POST", `${t}/values`, { body: "[".repeat(60 * 1024) });
    expectError(pile, 400, "INVALID_ARGUMENT");
  });

  it("values proto3 JSON would take but change on the way → 400 naming the field", async () => {
    const refused = async (path: string, body?: object): Promise<{ field: string; description: string }[]> =>
      violations(
        expectError(
          await call(
            body === undefined ? "GET" : "POST",
            path,
            body === undefined ? {} : { body: JSON.stringify(body) },
          ),
          400,
          "INVALID_ARGUMENT",
        ),
      );
    // A 64-bit integer beyond 2^53 as a JSON number is already rounded by JSON.parse.
    const rounded = await call("POST", `${t}/values`, { body: '{"int64":9007199254740993}' });
    expect(violations(expectError(rounded, 400, "INVALID_ARGUMENT"))).toEqual([
      { field: "int64", description: expect.stringMatching(/send it as a string/) as unknown },
    ]);
    const inMap = await call("POST", `${t}/values`, { body: '{"counts":{"1":9007199254740993}}' });
    expect(violations(expectError(inMap, 400, "INVALID_ARGUMENT"))[0]?.field).toBe("counts");
    const exact = await call("POST", `${t}/values`, {
      body: '{"int64":"9007199254740993","int64Value":"-9223372036854775808"}',
    });
    expect(exact.json).toMatchObject({ int64: "9007199254740993", int64Value: "-9223372036854775808" });
    // Days and hours that do not exist, in the body and in the query.
    expect((await refused(`${t}/values`, { timestamp: "2026-02-30T00:00:00Z" }))[0]?.field).toBe("timestamp");
    expect((await refused(`${t}/values`, { times: ["2026-01-01T24:00:00Z"] }))[0]?.field).toBe("times");
    expect((await refused(`${t}/values?timestamp=2026-04-31T10:00:00Z`))[0]?.field).toBe("timestamp");
    expect((await call("GET", `${t}/values?timestamp=2028-02-29T23:59:59Z`)).status).toBe(200);
    // Non-decimal numbers, which JavaScript's Number() would read.
    expect((await refused(`${t}/values?int64=0x10`))[0]?.field).toBe("int64");
    expect((await refused(`${t}/values?uint32Value=0b101`))[0]?.field).toBe("uint32Value");
    expect((await refused(`${t}/values`, { int64: "0x10" }))[0]?.field).toBe("int64");
    expect((await refused(`${t}/values?int64=%201%20`))[0]?.field).toBe("int64");
    // A Duration counts nanoseconds; a Value cannot hold infinity (1e400 parses as Infinity).
    expect((await refused(`${t}/values?duration=1.0000000001s`))[0]?.description).toMatch(
      /9 fractional digits/,
    );
    const infinite = await call("POST", `${t}/values`, { body: '{"value":{"a":[1e400]}}' });
    expect(violations(expectError(infinite, 400, "INVALID_ARGUMENT"))[0]?.field).toBe("value");
    expect((await call("POST", `${t}/values`, { body: '{"struct":{"a":-1e400}}' })).status).toBe(400);
    expect((await call("POST", `${t}/values`, { body: '{"value":1e400}' })).status).toBe(400);
    // An enum by a name it does not have, and a message given as a string, name their field.
    expect((await refused(`${t}/values`, { genre: "NOPE" }))[0]?.field).toBe("genre");
    expect((await refused(`${t}/shelves/s1/books`, { title: "T", shelf: "x" }))[0]?.field).toBe("shelf");
  });

  it("numbers out of their type's range or form, map keys that would change: 400, nothing quoted", async () => {
    const cases: [string, string][] = [
      ['{"uint32Value":"4111111111111111"}', "out of range"],
      ['{"counts":{"2147483648":"1"}}', "out of range"],
      ['{"uint32Value":-1}', "out of range"],
      ['{"int64":"4111111111111111x"}', "not a decimal whole number"],
      ['{"int64":1.5}', "whole number"],
      ['{"float":"abc4111"}', "not a decimal number"],
      ['{"float":1e39}', "out of range for a float"],
      ['{"doubleValue":1e400}', "infinity"],
      ['{"boolValue":"yes"}', "expected true or false"],
      ['{"stringValue":4111111111111111}', "expected a string"],
      ['{"timestamp":4111111111111111}', "RFC 3339"],
      ['{"duration":{"seconds":1}}', "duration string"],
      ['{"struct":"x"}', "expected a JSON object"],
      ['{"counts":{"0x1":"1"}}', "decimal whole numbers"],
      ['{"counts":{"01":"1"}}', "without leading zeros"],
      ['{"labels":{"__proto__":"x","b":"y"}}', "__proto__"],
      ['{"struct":{"a":{"__proto__":1}}}', "__proto__"],
    ];
    for (const [body, description] of cases) {
      const answer = await call("POST", `${t}/values`, { body });
      const error = expectError(answer, 400, "INVALID_ARGUMENT");
      const field = Object.keys(JSON.parse(body) as object)[0];
      expect({ body, violations: violations(error) }).toMatchObject({
        body,
        violations: [{ field, description: expect.stringContaining(description) as unknown }],
      });
      expect(JSON.stringify(answer.json)).not.toContain("4111");
    }
    expect((await call("GET", `${t}/values?counts[0x1]=1`)).status).toBe(400);
    expect((await call("GET", `${t}/values?labels[__proto__]=x`)).status).toBe(400);
    expect((await call("GET", `${t}/values?uint32Value=4294967296`)).status).toBe(400);
    const fine = await call("POST", `${t}/values`, {
      body: '{"float":"NaN","counts":{"-2147483648":"1"},"uint32Value":"4294967295","boolValue":false}',
    });
    expect(fine.status).toBe(200);
  });

  it("a value of the wrong JSON type is named by its field and never quoted back", async () => {
    const answer = await call("POST", `${t}/shelves/s1/books`, { body: '{"title":5555555555554444}' });
    const error = expectError(answer, 400, "INVALID_ARGUMENT");
    expect(violations(error)).toEqual([{ field: "title", description: "expected a string, got a number" }]);
    expect(JSON.stringify(answer.json)).not.toContain("5555");
    const bytes = await call("POST", `${t}/values`, { body: '{"bytes":{"secret":"4242"},"float":"4242x"}' });
    expect(JSON.stringify(bytes.json)).not.toContain("4242");
    expect(bytes.status).toBe(400);
  });

  it("a JSON body naming one field twice → 400 (JSON.parse would keep the last silently)", async () => {
    const twice = await call("POST", `${t}/shelves/s1/books`, { body: '{"title":"t","title":"u"}' });
    expect(expectError(twice, 400, "INVALID_ARGUMENT").message).toMatch(/names "title" twice/);
  });

  it("one field by both its names in the query, or a malformed query escape → 400", async () => {
    const twice = await call("GET", `${t}/shelves/s/books?page_size=1&pageSize=2`);
    expect(violations(expectError(twice, 400, "INVALID_ARGUMENT"))[0]?.description).toMatch(
      /given twice \(as page_size and pageSize\)/,
    );
    expectError(await call("GET", `${t}/shelves/s/books?page_token=%ZZ`), 400, "INVALID_ARGUMENT");
    expectError(await call("GET", `${t}/shelves/s/books?page_token=%C3%28`), 400, "INVALID_ARGUMENT");
    expect((await call("GET", `${t}/shelves/s/books?page_token=%C3%A9+x`)).status).toBe(200);
  });

  it("a compressed body → 415 (the gateway reads bodies as sent)", async () => {
    const answer = await call("POST", `${t}/values`, { body: "{}", headers: { "content-encoding": "gzip" } });
    expect(expectError(answer, 415, "INVALID_ARGUMENT").message).toMatch(/content-encoding "gzip"/);
  });

  it("a body under the limit that outgrows it once encoded for the service → 413, not the service's 429", async () => {
    // Each `[]` inside a google.protobuf.Value is 3 bytes of JSON and 4 of protobuf.
    const items = Math.floor((64 * 1024 - 20) / 3);
    const body = `{"value":[${Array.from({ length: items }, () => "[]").join(",")}]}`;
    expect(body.length).toBeLessThan(64 * 1024);
    const error = expectError(await call("POST", `${t}/values`, { body }), 413, "INVALID_ARGUMENT");
    expect(error.message).toMatch(/once encoded/);
  });

  it("a service's ErrorInfo http_status (4xx) overrides the REST status", async () => {
    const overridden = await call("POST", "/v1/echo/fail", {
      body: JSON.stringify({ code: "invalid_argument", message: "key reused", http_status: "422" }),
    });
    const error = expectError(overridden, 422, "INVALID_ARGUMENT");
    expect(error.details).toContainEqual(
      expect.objectContaining({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        metadata: { http_status: "422" },
      }),
    );
    // A service cannot turn an error into a 5xx or a success.
    const ignored = await call("POST", "/v1/echo/fail", {
      body: JSON.stringify({ code: "not_found", message: "x", http_status: "500" }),
    });
    expectError(ignored, 404, "NOT_FOUND");
  });
});

/** fetch refuses a GET with a body: send it raw over HTTP/2. */
async function getWithBody(): Promise<Answer> {
  const session = http2.connect(gateway.url);
  try {
    return await new Promise<Answer>((resolve, reject) => {
      const stream = session.request(
        { ":method": "GET", ":path": `${t}/shelves/1`, "content-type": "application/json" },
        { endStream: false },
      );
      let status = 0;
      let headers = new Headers();
      let body = "";
      stream.on("response", (h) => {
        status = Number(h[":status"]);
        headers = new Headers(
          Object.entries(h)
            .filter(([k]) => !k.startsWith(":"))
            .map(([k, v]) => [k, String(v)]),
        );
      });
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => (body += chunk));
      stream.on("end", () => resolve({ status, headers, json: JSON.parse(body) }));
      stream.on("error", reject);
      stream.end("{}");
    });
  } finally {
    session.close();
  }
}
