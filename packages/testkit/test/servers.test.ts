import { execFileSync } from "node:child_process";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { startNats } from "../src/nats.js";
import { startRedis } from "../src/redis.js";
import { probeTcp } from "../src/server-process.js";

describe("startNats", () => {
  it("keeps JetStream data across stop() and start() on the same port", async () => {
    const nats = await startNats();
    try {
      let nc = await connect({ servers: nats.url });
      let jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "KEEP", subjects: ["keep.>"] });
      await jsm.jetstream().publish("keep.one", "hello");
      await nc.close();

      await nats.stop();
      expect(await probeTcp(nats.port, "INFO")).toBe(false);
      await nats.start();

      nc = await connect({ servers: nats.url });
      jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info("KEEP");
      expect(info.state.messages).toBe(1);
      const stored = await jsm.streams.getMessage("KEEP", { seq: 1 });
      expect(stored?.string()).toBe("hello");
      await nc.close();
    } finally {
      await nats.stop();
    }
  });

  it("starts with syncAlways, applying sync_interval only where nats-server supports it", async () => {
    const version = /v(\d+)\.(\d+)/.exec(execFileSync("nats-server", ["--version"], { encoding: "utf8" }));
    const supported = Number(version?.[1]) > 2 || (Number(version?.[1]) === 2 && Number(version?.[2]) >= 10);
    const nats = await startNats({ syncAlways: true });
    try {
      expect(nats.syncAlways).toBe(supported);
      const nc = await connect({ servers: nats.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "SYNC", subjects: ["sync.>"] });
      const ack = await jsm.jetstream().publish("sync.one", "x");
      expect(ack.seq).toBe(1);
      await nc.close();
    } finally {
      await nats.stop();
    }
  });
});

describe("startRedis", () => {
  it("serves on its own port and is gone after stop()", async () => {
    const [a, b] = await Promise.all([startRedis(), startRedis()]);
    const ra = new Redis(a.url, { lazyConnect: true });
    const rb = new Redis(b.url, { lazyConnect: true });
    try {
      await ra.set("k", "a");
      expect(await rb.get("k")).toBeNull();
    } finally {
      ra.disconnect();
      rb.disconnect();
      await a.stop();
      await b.stop();
    }
    expect(await probeTcp(a.port, "+PONG", "PING\r\n")).toBe(false);
  });
});
