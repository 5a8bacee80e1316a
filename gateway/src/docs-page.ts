import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { DescFile } from "@bufbuild/protobuf";
import type { Exchange } from "./http-exchange.js";
import { createOpenApiDocument, type OpenApiDocument } from "./openapi/openapi-document.js";
import { defaultProtoSourceRoot, loadProtoComments } from "./openapi/proto-comments.js";
import type { Route } from "./route-table.js";

// `GET /openapi.json` (the OpenAPI 3.1 document, built once at start-up) and `GET /docs`, a
// Swagger UI page whose assets come from the swagger-ui-dist npm package, served by the gateway
// itself: no CDN, so the page works offline and its Content-Security-Policy can allow only 'self'.
//
// swagger-ui-dist is pinned to 5.17.14, the last release without the @scarf/scarf dependency
// (install-time analytics that would also need a build-script approval); it renders OpenAPI 3.1.

export interface ApiDocs {
  readonly document: OpenApiDocument;
  /** Answers `/openapi.json`, `/docs` and the docs assets; returns a metrics label, or undefined. */
  serve(exchange: Exchange): string | undefined;
}

export interface ApiDocsOptions {
  readonly routes: readonly Route[];
  /** Root of the .proto sources (comments become descriptions); default: @zero/proto's. */
  readonly protoSourceRoot?: string;
}

/**
 * Swagger UI sets inline styles (no inline scripts: the start-up code is `/docs/docs.js`); "Try it
 * out" calls the same origin. Nothing else is allowed, nor may another site frame the page.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Zero API</title>
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" />
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/docs.js"></script>
  </body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
const initScript = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("../openapi.json", window.location.href).toString(),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
`;

const assets: Record<string, { file?: string; text?: string; type: string }> = {
  "/docs/swagger-ui.css": { file: "swagger-ui.css", type: "text/css; charset=utf-8" },
  "/docs/swagger-ui-bundle.js": { file: "swagger-ui-bundle.js", type: "text/javascript; charset=utf-8" },
  "/docs/favicon-32x32.png": { file: "favicon-32x32.png", type: "image/png" },
  "/docs/docs.js": { text: initScript, type: "text/javascript; charset=utf-8" },
};

export function createApiDocs(opts: ApiDocsOptions): ApiDocs {
  const files = new Map<string, DescFile>();
  for (const route of opts.routes) files.set(route.service.file.proto.name, route.service.file);
  const { comments } = loadProtoComments(files.values(), opts.protoSourceRoot ?? defaultProtoSourceRoot());
  const document = createOpenApiDocument({ routes: opts.routes, comments });
  const documentJson = Buffer.from(JSON.stringify(document));
  const assetDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
  const loaded = new Map<string, Buffer>();

  const send = (exchange: Exchange, body: Buffer, headers: Record<string, string>): void => {
    const { req, res } = exchange;
    res.writeHead(200, {
      "content-length": String(body.length),
      "x-request-id": exchange.requestId,
      "x-content-type-options": "nosniff",
      ...headers,
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };

  return {
    document,
    serve(exchange) {
      const method = exchange.req.method;
      if (method !== "GET" && method !== "HEAD") return undefined;
      if (exchange.path === "/openapi.json") {
        send(exchange, documentJson, {
          "content-type": "application/json; charset=utf-8",
          "cache-control": "no-cache",
        });
        return "GET /openapi.json";
      }
      if (exchange.path === "/docs" || exchange.path === "/docs/") {
        send(exchange, Buffer.from(page), {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-cache",
          "content-security-policy": DOCS_CSP,
          "x-frame-options": "DENY",
          "referrer-policy": "no-referrer",
        });
        return "GET /docs";
      }
      const asset = assets[exchange.path];
      if (!asset) return undefined;
      let body = loaded.get(exchange.path);
      if (!body) {
        body = asset.text !== undefined ? Buffer.from(asset.text) : readFileSync(join(assetDir, asset.file!));
        loaded.set(exchange.path, body);
      }
      send(exchange, body, { "content-type": asset.type, "cache-control": "public, max-age=3600" });
      return "GET /docs/*";
    },
  };
}
