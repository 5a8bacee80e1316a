import { createLogger } from "@zero/kit/log";
import { startRedis, type TestRedis } from "@zero/testkit/redis";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createThrottle, type ThrottlePolicy } from "../src/credentials/throttle.js";

let redis: TestRedis;
let client: Redis;
const logger = createLogger("auth", { level: "silent" });
const policy: ThrottlePolicy = {
  name: "test",
  windowMs: 60_000,
  freeFailures: 2,
  baseDelayMs: 1000,
  maxDelayMs: 4000,
  hardCap: 6,
};

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe("createThrottle over Redis", () => {
  it("doubles the lock after the free failures, caps it, and locks for the window at the hard cap", async () => {
    const throttle = createThrottle({ redis: client, logger, policy });
    const locks: number[] = [];
    for (let i = 0; i < 6; i++) locks.push((await throttle.fail("key-a")).lockMs);
    expect(locks.slice(0, 5)).toEqual([0, 0, 1000, 2000, 4000]);
    expect(locks[5]).toBeGreaterThan(55_000); // hard cap: until the window ends
    expect(await throttle.retryAfterMs("key-a")).toBeGreaterThan(55_000);
    expect(await throttle.retryAfterMs("key-b")).toBe(0);
    await throttle.reset("key-a");
    expect(await throttle.retryAfterMs("key-a")).toBe(0);
  });

  it("shares state between replicas (two throttles, one Redis) and stores no key in clear", async () => {
    const one = createThrottle({ redis: client, logger, policy });
    const two = createThrottle({ redis: client, logger, policy });
    await one.fail("someone@example.com");
    await two.fail("someone@example.com");
    expect((await one.fail("someone@example.com")).failures).toBe(3);
    expect(await two.retryAfterMs("someone@example.com")).toBeGreaterThan(0);
    const keys = await client.keys("*");
    expect(keys.join(" ")).not.toContain("someone@example.com");
  });

  it("counts in memory when Redis is unreachable, so guessing is still slowed", async () => {
    const down = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    down.on("error", () => undefined);
    const throttle = createThrottle({ redis: down, logger, policy });
    const locks: number[] = [];
    for (let i = 0; i < 4; i++) locks.push((await throttle.fail("key-c")).lockMs);
    expect(locks).toEqual([0, 0, 1000, 2000]);
    expect(await throttle.retryAfterMs("key-c")).toBeGreaterThan(1000);
    down.disconnect();
  });
});
