import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@zero/kit/log";
import type { Server } from "@zero/kit/server";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { TranscodingService } from "@zero/proto/zero/testing/v1/transcoding_pb";
import { DOCS_CSP } from "../src/docs-page.js";
import { startGateway, type Gateway } from "../src/gateway-server.js";
import { startEchoServer } from "./fixtures/echo-server.js";
import { createTestTokens } from "./fixtures/tokens.js";

// GET /openapi.json and the /docs page, as a browser or a code generator fetches them.

const logger = createLogger("gateway-docs-test", { level: "silent" });
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
  });
});

afterAll(async () => {
  await gateway?.close(1000);
  await echo?.close(1000);
});

describe("GET /openapi.json", () => {
  it("serves a valid OpenAPI 3.1 document of the gateway's routes", async () => {
    const response = await fetch(`${gateway.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const document = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths)).toContain("/v1/transcoding/shelves/{shelf}/books/{book}");
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });
});

describe("the document agrees with what the gateway does", () => {
  type Doc = {
    paths: Record<string, Record<string, Record<string, unknown>>>;
    components: { schemas: Record<string, Record<string, unknown>> };
  };
  let document: Doc;
  beforeAll(async () => {
    document = (await (await fetch(`${gateway.url}/openapi.json`)).json()) as Doc;
  });

  it("a partial PATCH body the gateway takes is not refused by the documented schema", async () => {
    const response = await fetch(`${gateway.url}/v1/transcoding/shelves/s1/books/b1`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ available: true }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ updateMask: "available" });
    const patch = document.paths["/v1/transcoding/shelves/{shelf}/books/{book}"]!["patch"]!;
    const body = patch["requestBody"] as { content: { "application/json": { schema: { $ref: string } } } };
    const component = body.content["application/json"].schema.$ref.replace("#/components/schemas/", "");
    expect(document.components.schemas[component]!["required"]).toBeUndefined();
    // The documented success response declares the X-Request-Id the answer carries.
    expect(response.headers.get("x-request-id")).toBeTruthy();
    expect((patch["responses"] as Record<string, { headers: object }>)["200"]!.headers).toHaveProperty(
      "X-Request-Id",
    );
  });

  it("a ** path parameter the gateway takes is not refused by the documented schema", async () => {
    const response = await fetch(`${gateway.url}/v1/transcoding/files/docs/a.txt`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ path: "docs/a.txt" });
    const get = document.paths["/v1/transcoding/files/{path}"]!["get"]!;
    const param = (get["parameters"] as { name: string; schema: { pattern?: string } }[]).find(
      (p) => p.name === "path",
    )!;
    if (param.schema.pattern !== undefined) expect("docs/a.txt").toMatch(new RegExp(param.schema.pattern));
  });
});

describe("GET /docs", () => {
  it("serves the Swagger UI page under a strict Content-Security-Policy", async () => {
    const response = await fetch(`${gateway.url}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(response.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(DOCS_CSP).toContain("script-src 'self'");
    expect(DOCS_CSP).not.toMatch(/unsafe-eval|https?:/);
    const html = await response.text();
    // Assets from the gateway itself: no CDN.
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain('src="/docs/swagger-ui-bundle.js"');
  });

  it("serves the page's assets from the swagger-ui-dist package, and answers HEAD", async () => {
    for (const [path, type] of [
      ["/docs/swagger-ui-bundle.js", /^text\/javascript/],
      ["/docs/swagger-ui.css", /^text\/css/],
      ["/docs/docs.js", /^text\/javascript/],
      ["/docs/favicon-32x32.png", /^image\/png/],
    ] as const) {
      const response = await fetch(gateway.url + path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type")).toMatch(type);
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    const head = await fetch(`${gateway.url}/docs/swagger-ui-bundle.js`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBeGreaterThan(100_000);
  });

  it("serves nothing else from the package", async () => {
    for (const path of [
      "/docs/package.json",
      "/docs/../package.json",
      "/docs/index.html",
      "/docs/swagger-ui.js.map",
    ]) {
      const response = await fetch(gateway.url + path);
      expect(response.status, path).toBe(404);
    }
  });
});
