import { describe, expect, it } from "vitest";
import { createCorsPolicy } from "./cors.js";

const headers =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];

describe("CORS policy", () => {
  const cors = createCorsPolicy({ allowedOrigins: ["https://shop.example.com"], maxAgeSeconds: 600 });

  it("grants a preflight from an allowed origin, cached for max-age", () => {
    const answer = cors.preflight(
      "OPTIONS",
      headers({
        origin: "https://shop.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "Content-Type, Authorization, connect-protocol-version",
      }),
    );
    expect(answer).toEqual({
      allowed: true,
      headers: {
        "access-control-allow-origin": "https://shop.example.com",
        "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE",
        "access-control-allow-headers": "content-type, authorization, connect-protocol-version",
        "access-control-max-age": "600",
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      },
    });
  });

  it("refuses other origins, methods and headers, saying which", () => {
    const ask = (values: Record<string, string>) =>
      cors.preflight("OPTIONS", headers({ "access-control-request-method": "GET", ...values }));
    expect(ask({ origin: "https://evil.example" })).toMatchObject({
      allowed: false,
      reason: expect.stringContaining("https://evil.example") as unknown,
    });
    expect(
      ask({ origin: "https://shop.example.com", "access-control-request-method": "TRACE" }),
    ).toMatchObject({
      allowed: false,
      reason: expect.stringContaining("TRACE") as unknown,
    });
    expect(
      ask({ origin: "https://shop.example.com", "access-control-request-headers": "x-admin" }),
    ).toMatchObject({
      allowed: false,
      reason: expect.stringContaining("x-admin") as unknown,
    });
  });

  it("is not a preflight without Access-Control-Request-Method", () => {
    expect(cors.preflight("OPTIONS", headers({ origin: "https://shop.example.com" }))).toBeUndefined();
    expect(cors.preflight("GET", headers({ origin: "https://shop.example.com" }))).toBeUndefined();
  });

  it("exposes the headers clients need on actual responses, to allowed origins only", () => {
    expect(Object.fromEntries(cors.responseHeaders("https://shop.example.com"))).toMatchObject({
      "access-control-allow-origin": "https://shop.example.com",
      vary: "Origin",
      "access-control-expose-headers": expect.stringContaining("ratelimit-remaining") as unknown,
    });
    expect(cors.responseHeaders("https://evil.example")).toEqual([]);
    expect(cors.responseHeaders(undefined)).toEqual([]);
  });

  it("answers * without credentials for a wildcard allow-list", () => {
    const open = createCorsPolicy({ allowedOrigins: ["*"], maxAgeSeconds: 60, allowCredentials: true });
    const granted = Object.fromEntries(open.responseHeaders("https://anyone.example"));
    expect(granted["access-control-allow-origin"]).toBe("*");
    expect(granted["access-control-allow-credentials"]).toBeUndefined();
  });
});
