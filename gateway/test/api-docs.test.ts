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
