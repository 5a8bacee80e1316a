import { startNats } from "@zero/testkit/nats";
import { describe, expect, it } from "vitest";
import { connectNats } from "../src/events/nats.js";
import { captureLogger, waitFor } from "./events-fixtures.js";

describe("connectNats", () => {
  it("waits for a server that is down at start instead of failing, then connects", async () => {
    const nats = await startNats();
    await nats.stop();
    const { logger, lines } = captureLogger();
    let settled = false;
    const connecting = connectNats(nats.url, logger).finally(() => {
      settled = true;
    });
    try {
      await waitFor("the warning", () => lines.some((l) => l.msg.startsWith("nats: not reachable")));
      expect(settled).toBe(false);
      await nats.start();
      const nc = await connecting;
      await nc.flush();
      expect(lines.filter((l) => l.msg.startsWith("nats: not reachable"))).toHaveLength(1);
      expect(lines.some((l) => l.msg === "nats: connected")).toBe(true);
      await nc.close();
    } finally {
      await nats.stop();
    }
  });

  it("stops waiting when its signal aborts, and never logs credentials", async () => {
    const nats = await startNats();
    await nats.stop();
    const { logger, lines } = captureLogger();
    const abort = new AbortController();
    const connecting = connectNats(`nats://svc:hunter2@127.0.0.1:${nats.port}`, logger, {
      signal: abort.signal,
    });
    await waitFor("the warning", () => lines.length > 0);
    abort.abort();
    await expect(connecting).rejects.toThrow(/abort/i);
    expect(JSON.stringify(lines)).not.toContain("hunter2");
  });
});
