import { describe, expect, it } from "vitest";
import { ConfigError } from "@zero/kit/config";
import { AuthService } from "@zero/proto/zero/auth/v1/auth_pb";
import { EchoService } from "@zero/proto/zero/testing/v1/echo_pb";
import { loadConfig, upstreamNameOf } from "./config.js";

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({}, [AuthService])).toEqual({
      host: "0.0.0.0",
      port: 8080,
      logLevel: "info",
      maxBodyBytes: 1024 * 1024,
      upstreamTimeoutMs: 30_000,
      authIssuer: "zero-auth",
      authAudience: "zero",
      upstreamUrls: { auth: "http://127.0.0.1:9001" },
    });
  });

  it("maps each proto package zero.<name>.v1 to <NAME>_URL, leaving unset ones unrouted", () => {
    expect(loadConfig({ AUTH_URL: "http://auth:9001" }, [AuthService, EchoService]).upstreamUrls).toEqual({
      auth: "http://auth:9001",
    });
    expect(loadConfig({ TESTING_URL: "http://echo:1" }, [AuthService, EchoService]).upstreamUrls).toEqual({
      auth: "http://127.0.0.1:9001",
      testing: "http://echo:1",
    });
  });

  it("reports every problem at once", () => {
    try {
      loadConfig({ PORT: "x", MAX_BODY_BYTES: "1", TESTING_URL: "not a url" }, [EchoService]);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems).toHaveLength(3);
    }
  });

  it("names upstreams after the proto package", () => {
    expect(upstreamNameOf(AuthService)).toBe("auth");
    expect(upstreamNameOf(EchoService)).toBe("testing");
  });
});
