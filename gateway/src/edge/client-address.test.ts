import { describe, expect, it } from "vitest";
import { createClientAddressResolver } from "./client-address.js";

const headers =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];

describe("client address", () => {
  it("ignores X-Forwarded-* from a peer that is not a trusted proxy", () => {
    const resolver = createClientAddressResolver(["10.0.0.0/8"]);
    const client = resolver.resolve(
      "203.0.113.9",
      headers({
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-proto": "https",
        host: "api.example",
        "x-forwarded-host": "evil",
      }),
      false,
    );
    expect(client).toEqual({ ip: "203.0.113.9", proto: "http", host: "api.example" });
  });

  it("believes a trusted proxy, reading X-Forwarded-For from the right past trusted hops", () => {
    const resolver = createClientAddressResolver(["10.0.0.0/8", "192.168.1.1"]);
    const client = resolver.resolve(
      "::ffff:10.1.2.3",
      headers({
        // spoofed-by-client, real client, inner proxy
        "x-forwarded-for": "6.6.6.6, 198.51.100.7, 192.168.1.1",
        "x-forwarded-proto": "https, http",
        "x-forwarded-host": "shop.example.com",
      }),
      false,
    );
    expect(client).toEqual({ ip: "198.51.100.7", proto: "https", host: "shop.example.com" });
  });

  it("stops at garbage in the chain, keeping the last address it could trust", () => {
    const resolver = createClientAddressResolver(["127.0.0.1"]);
    expect(resolver.resolve("127.0.0.1", headers({ "x-forwarded-for": "not-an-ip" }), true).ip).toBe(
      "127.0.0.1",
    );
    expect(resolver.resolve("127.0.0.1", headers({}), true)).toMatchObject({
      ip: "127.0.0.1",
      proto: "https",
    });
  });

  it("trusts nobody by default, and handles IPv6 CIDRs", () => {
    expect(
      createClientAddressResolver([]).resolve("::1", headers({ "x-forwarded-for": "1.1.1.1" }), false).ip,
    ).toBe("::1");
    const v6 = createClientAddressResolver(["fd00::/8"]);
    expect(v6.resolve("fd12::1", headers({ "x-forwarded-for": "2001:db8::5" }), false).ip).toBe(
      "2001:db8::5",
    );
  });

  it("refuses malformed CIDRs with the entry in the message", () => {
    expect(() => createClientAddressResolver(["10.0.0.0/33"])).toThrow(/10\.0\.0\.0\/33/);
    expect(() => createClientAddressResolver(["example.com"])).toThrow(/example\.com/);
  });
});
