import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  aRegistration,
  postJson,
  startPlatform,
  type ApiError,
  type JsonResponse,
  type TestPlatform,
} from "./platform.js";

let platform: TestPlatform;
beforeAll(async () => {
  platform = await startPlatform();
});
afterAll(async () => {
  await platform?.close();
});

/** Every error the gateway sends has DESIGN.md's shape and a message a person can act on. */
function expectError(res: JsonResponse, httpStatus: number, status: string): ApiError["error"] {
  expect(res.status).toBe(httpStatus);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  const { error } = res.body as ApiError;
  expect(error.code).toBe(httpStatus);
  expect(error.status).toBe(status);
  expect(error.message.length).toBeGreaterThan(5);
  expect(Array.isArray(error.details)).toBe(true);
  return error;
}

async function send(
  method: string,
  path: string,
  body?: string,
  contentType = "application/json",
): Promise<JsonResponse> {
  const res = await fetch(`${platform.url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": contentType },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as unknown };
}

describe("bad input through the gateway gets a 4xx with a JSON error body", () => {
  test("malformed JSON → 400", async () => {
    expectError(
      await send("POST", "/v1/auth/register", '{"email": "a@b.co", "password": '),
      400,
      "INVALID_ARGUMENT",
    );
  });

  test("an unknown JSON field → 400 naming the field", async () => {
    const error = expectError(
      await postJson(`${platform.url}/v1/auth/register`, { ...aRegistration(), isAdmin: true }),
      400,
      "INVALID_ARGUMENT",
    );
    expect(JSON.stringify(error)).toContain("isAdmin");
  });

  test("a missing required field → 400 with a field violation", async () => {
    const { password: _omitted, ...noPassword } = aRegistration();
    const error = expectError(
      await postJson(`${platform.url}/v1/auth/register`, noPassword),
      400,
      "INVALID_ARGUMENT",
    );
    const badRequest = error.details.find((d) => d["@type"].endsWith("google.rpc.BadRequest"));
    expect(JSON.stringify(badRequest)).toContain("password");
  });

  test("an invalid email and a short password → 400 naming both fields", async () => {
    const error = expectError(
      await postJson(`${platform.url}/v1/auth/register`, { email: "not-an-email", password: "short" }),
      400,
      "INVALID_ARGUMENT",
    );
    expect(JSON.stringify(error.details)).toContain("email");
    expect(JSON.stringify(error.details)).toContain("password");
  });

  test("a wrong method on a known route → 405 with Allow", async () => {
    const res = await send("GET", "/v1/auth/register");
    expectError(res, 405, "UNIMPLEMENTED");
    expect(res.headers.get("allow")).toContain("POST");
  });

  test("an unknown route → 404", async () => {
    expectError(await send("GET", "/v1/no/such/route"), 404, "NOT_FOUND");
  });

  test("an unknown query parameter → 400", async () => {
    expectError(await send("GET", "/v1/auth/jwks?colour=blue"), 400, "INVALID_ARGUMENT");
  });

  test("a 2 MB body → 413, and the gateway keeps serving", async () => {
    const huge = JSON.stringify({ ...aRegistration(), firstName: "x".repeat(2 * 1024 * 1024) });
    const res = await send("POST", "/v1/auth/register", huge);
    expect(res.status).toBe(413);
    expect((res.body as ApiError).error.code).toBe(413);
    expect((await postJson(`${platform.url}/v1/auth/register`, aRegistration())).status).toBe(201);
  });

  test("an unsupported content type → 415", async () => {
    expectError(
      await send("POST", "/v1/auth/register", "email=a@b.co", "application/x-www-form-urlencoded"),
      415,
      "INVALID_ARGUMENT",
    );
  });

  test("a JSON body that is not an object → 400", async () => {
    expectError(await send("POST", "/v1/auth/login", "[1,2,3]"), 400, "INVALID_ARGUMENT");
  });

  test("a wrongly typed field → 400", async () => {
    expectError(
      await postJson(`${platform.url}/v1/auth/login`, { email: 42, password: ["x"] }),
      400,
      "INVALID_ARGUMENT",
    );
  });
});
