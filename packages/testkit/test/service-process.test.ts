import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { freePort } from "../src/ports.js";
import { startServiceProcess } from "../src/service-process.js";

const serviceDir = fileURLToPath(new URL("fixtures/tiny-service", import.meta.url));

describe("startServiceProcess", () => {
  it("waits for /readyz, then stops the process with SIGTERM", async () => {
    const port = await freePort();
    const proc = startServiceProcess({ serviceDir, env: { PORT: String(port), READY_AFTER_MS: "300" } });
    const base = `http://127.0.0.1:${port}`;
    expect(await proc.waitForReadyz(base, { accept: (status) => status !== 0 })).toBe(503);
    expect(await proc.waitForReadyz(base)).toBe(200);
    const stopped = await proc.terminate();
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(10_000);
  });

  it("passes only the given environment (plus PATH and LOG_LEVEL) and the arguments", async () => {
    process.env["ZERO_TESTKIT_LEAK_CHECK"] = "leaked";
    try {
      const proc = startServiceProcess({ serviceDir, args: ["env"], env: { ONLY: "this" } });
      expect(await proc.exited).toBe(0);
      const env = JSON.parse(proc.stdout()) as Record<string, string>;
      expect(env).toMatchObject({ ONLY: "this", LOG_LEVEL: "warn" });
      expect(env).not.toHaveProperty("ZERO_TESTKIT_LEAK_CHECK");
    } finally {
      delete process.env["ZERO_TESTKIT_LEAK_CHECK"];
    }
  });

  it("fails the wait at once, with the process's stderr, when it exits", async () => {
    const port = await freePort();
    const proc = startServiceProcess({ serviceDir, args: ["fail"], env: { PORT: String(port) } });
    await expect(proc.waitForReadyz(`http://127.0.0.1:${port}`)).rejects.toThrow(/refusing to start/);
    expect(await proc.exited).toBe(3);
  });
});
