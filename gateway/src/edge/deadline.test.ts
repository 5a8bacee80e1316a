import { describe, expect, it } from "vitest";
import {
  clientTimeoutMs,
  formatGrpcTimeout,
  malformedTimeout,
  parseConnectTimeout,
  parseGrpcTimeout,
} from "./deadline.js";

describe("deadlines", () => {
  it("reads grpc-timeout in every unit, rounding up to whole milliseconds", () => {
    expect(parseGrpcTimeout("2H")).toBe(7_200_000);
    expect(parseGrpcTimeout("3M")).toBe(180_000);
    expect(parseGrpcTimeout("5S")).toBe(5_000);
    expect(parseGrpcTimeout("250m")).toBe(250);
    expect(parseGrpcTimeout("1500u")).toBe(2);
    expect(parseGrpcTimeout("10n")).toBe(1);
  });

  it("ignores malformed values rather than guessing", () => {
    for (const value of ["", "5", "5s", "123456789m", "-1S", "1.5S", " 5S"]) {
      expect(parseGrpcTimeout(value)).toBeUndefined();
    }
    for (const value of ["", "abc", "-5", "1e3", "12345678901"]) {
      expect(parseConnectTimeout(value)).toBeUndefined();
    }
    expect(parseConnectTimeout("1500")).toBe(1500);
  });

  it("prefers connect-timeout-ms when a client sends both", () => {
    const headers: Record<string, string> = { "connect-timeout-ms": "700", "grpc-timeout": "2S" };
    expect(clientTimeoutMs((name) => headers[name])).toBe(700);
    expect(clientTimeoutMs((name) => (name === "grpc-timeout" ? "2S" : undefined))).toBe(2000);
    expect(clientTimeoutMs(() => undefined)).toBeUndefined();
  });

  it("writes grpc-timeout within gRPC's eight digits", () => {
    expect(formatGrpcTimeout(30_000)).toBe("30000m");
    expect(formatGrpcTimeout(0.2)).toBe("1m");
    expect(formatGrpcTimeout(200_000_000)).toBe("200000S");
  });

  it("keeps a far deadline within what a Node timer can wait (2^31-1 ms)", () => {
    expect(parseConnectTimeout("9999999999")).toBe(2 ** 31 - 1);
    expect(parseGrpcTimeout("99999999H")).toBe(2 ** 31 - 1);
    expect(parseConnectTimeout("2147483647")).toBe(2 ** 31 - 1);
  });

  it("says what is wrong with a malformed timeout header, nothing for absent or valid ones", () => {
    const of = (headers: Record<string, string>) => malformedTimeout((name) => headers[name]);
    expect(of({})).toBeUndefined();
    expect(of({ "connect-timeout-ms": "1500", "grpc-timeout": "2S" })).toBeUndefined();
    expect(of({ "connect-timeout-ms": "abc" })).toMatch(/^connect-timeout-ms must be whole milliseconds/);
    expect(of({ "connect-timeout-ms": "99999999999" })).toMatch(/^connect-timeout-ms/);
    expect(of({ "grpc-timeout": "1x" })).toMatch(/^grpc-timeout must be/);
  });
});
