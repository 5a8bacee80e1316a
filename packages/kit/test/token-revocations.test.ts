import { Redis } from "ioredis";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenRevocations, withRevocationCheck } from "../src/token-revocations.js";
import { captureLogs } from "./fixtures/logs.js";
import { createTestIssuer, type TestIssuer } from "./fixtures/tokens.js";

let redis: TestRedis;
let client: Redis;
let issuer: TestIssuer;
const logs = captureLogs();

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  issuer = await createTestIssuer();
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe("token revocations", () => {
  it("refuses a revoked session's tokens and a user's tokens issued before a revocation, for as long as they live", async () => {
    const revocations = createTokenRevocations({
      redis: client,
      accessTokenTtlSeconds: 900,
      logger: logs.logger,
    });
    const verifier = withRevocationCheck(issuer.verifier, (claims) => revocations.isRevoked(claims));
    const ended = await issuer.token("user-1", ["customer"], { sid: "s-ended" });
    const live = await issuer.token("user-1", ["customer"], { sid: "s-live" });
    await expect(verifier.verify(ended)).resolves.toMatchObject({ subject: "user-1" });

    await revocations.revokeSessions(["s-ended"]);
    await expect(verifier.verify(ended)).rejects.toMatchObject({
      code: "unauthenticated",
      reason: "TOKEN_REVOKED",
    });
    await expect(verifier.verify(live)).resolves.toMatchObject({ subject: "user-1" });
    expect(await client.ttl("zero:revoked:session:s-ended")).toBeGreaterThan(900);

    await revocations.revokeTokensIssuedBefore("user-1", new Date(Date.now() + 2000));
    await expect(verifier.verify(live)).rejects.toMatchObject({ reason: "TOKEN_REVOKED" });
    // Another user is untouched.
    await expect(verifier.verify(await issuer.token("user-2", [], { sid: "s-2" }))).resolves.toBeDefined();
  });

  it("lets unexpired tokens through while Redis is unreachable, and logs it once", async () => {
    const down = new Redis("redis://127.0.0.1:1", {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    down.on("error", () => undefined);
    const revocations = createTokenRevocations({
      redis: down,
      accessTokenTtlSeconds: 900,
      logger: logs.logger,
    });
    const verifier = withRevocationCheck(issuer.verifier, (claims) => revocations.isRevoked(claims));
    const token = await issuer.token("user-3", [], { sid: "s-3" });
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-3" });
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: "user-3" });
    expect(logs.lines.filter((l) => /revocation list unreachable/.test(String(l["msg"])))).toHaveLength(1);
    down.disconnect();
  });
});
