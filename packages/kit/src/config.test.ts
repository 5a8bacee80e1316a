import { describe, expect, it } from "vitest";
import { ConfigError, envReader } from "./config.js";

describe("envReader", () => {
  it("reads values and applies fallbacks", () => {
    const e = envReader({
      NAME: "auth",
      PORT: "9001",
      DEBUG: "Yes",
      DATABASE_URL: "postgres://u:p@127.0.0.1:5432/zero_auth",
      ORIGINS: " a , b,, c ",
      EMPTY: "",
    });
    const c = {
      name: e.string("NAME"),
      port: e.int("PORT", 8080, { min: 1, max: 65535 }),
      debug: e.bool("DEBUG"),
      db: e.url("DATABASE_URL"),
      origins: e.list("ORIGINS"),
      host: e.string("HOST", "0.0.0.0"),
      level: e.optional("LOG_LEVEL"),
      empty: e.optional("EMPTY"),
      fallbackList: e.list("NOPE", ["x"]),
      fallbackInt: e.int("NOPE", 3),
      fallbackBool: e.bool("NOPE", true),
    };
    e.done();
    expect(c).toEqual({
      name: "auth",
      port: 9001,
      debug: true,
      db: "postgres://u:p@127.0.0.1:5432/zero_auth",
      origins: ["a", "b", "c"],
      host: "0.0.0.0",
      level: undefined,
      empty: undefined,
      fallbackList: ["x"],
      fallbackInt: 3,
      fallbackBool: true,
    });
  });

  it("reports every problem at once", () => {
    const e = envReader({
      PORT: "80x",
      MAX: "100",
      MIN: "-1",
      FLAG: "maybe",
      URL: "not a url",
      SECRET_URL: "::nope:secret",
    });
    e.string("REQUIRED");
    e.int("PORT");
    e.int("MAX", undefined, { max: 10 });
    e.int("MIN", undefined, { min: 0 });
    e.bool("FLAG");
    e.url("URL");
    e.url("SECRET_URL");
    e.list("LIST");
    let error: unknown;
    try {
      e.done();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toEqual([
      "REQUIRED is required (a string) but is not set",
      'PORT must be an integer, got "80x"',
      "MAX must be at most 10, got 100",
      "MIN must be at least 0, got -1",
      'FLAG must be true or false, got "maybe"',
      "URL must be an absolute URL (e.g. scheme://host:port)",
      "SECRET_URL must be an absolute URL (e.g. scheme://host:port)",
      "LIST is required (a comma-separated list) but is not set",
    ]);
    expect((error as ConfigError).message).toContain("8 problems");
    expect((error as ConfigError).message).not.toContain("secret");
  });

  it("treats an empty variable as unset", () => {
    const e = envReader({ NAME: "  " });
    expect(e.string("NAME", "fallback")).toBe("fallback");
    e.string("NAME");
    expect(() => e.done()).toThrow(/NAME is required/);
  });
});
