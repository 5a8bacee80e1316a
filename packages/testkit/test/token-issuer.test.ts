import { decodeProtectedHeader } from "jose";
import { describe, expect, it } from "vitest";
import { createTokenIssuer } from "../src/token-issuer.js";

describe("createTokenIssuer", () => {
  it("signs user and service tokens its verifier accepts, shaped like auth's", async () => {
    const issuer = await createTokenIssuer();
    expect(await issuer.verifier.verify(await issuer.user("user-1"))).toEqual({
      subject: "user-1",
      roles: ["customer"],
      kind: "user",
    });
    expect(await issuer.verifier.verify(await issuer.user("admin-1", ["customer", "admin"]))).toMatchObject({
      roles: ["customer", "admin"],
    });
    expect(await issuer.verifier.verify(await issuer.service("payments"))).toEqual({
      subject: "service:payments",
      roles: ["service"],
      kind: "service",
    });
    const token = await issuer.sign({ sub: "user-2", extra: { sid: "s-1" } });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "EdDSA", kid: issuer.jwks.keys[0]?.kid });
    expect(issuer.jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    expect(issuer.jwks.keys[0]).not.toHaveProperty("d");
  });

  it("makes tokens the verifier refuses: expired, for another audience, or from another key", async () => {
    const issuer = await createTokenIssuer({ issuer: "https://auth.zero.test", audience: "zero" });
    expect(issuer.issuer).toBe("https://auth.zero.test");
    await expect(issuer.verifier.verify(await issuer.sign({ sub: "u", expiresIn: "-1m" }))).rejects.toThrow(
      /expired/,
    );
    await expect(issuer.verifier.verify(await issuer.sign({ sub: "u", aud: "elsewhere" }))).rejects.toThrow(
      /not issued for this platform/,
    );
    const stranger = await createTokenIssuer({ issuer: "https://auth.zero.test" });
    await expect(issuer.verifier.verify(await stranger.user("u"))).rejects.toThrow(/unknown key/);
  });
});
