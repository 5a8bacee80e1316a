import { describe, expect, it } from "vitest";
import { createLogger } from "./log.js";
import { createReadiness } from "./readiness.js";

const logger = createLogger("readiness-test", { level: "silent" });

describe("createReadiness", () => {
  it("is ready at once when there is nothing to check", async () => {
    const readiness = createReadiness({ checks: [], logger });
    expect(readiness.current()).toEqual({ ready: true, failing: [] });
    expect(await readiness.refresh()).toEqual({ ready: true, failing: [] });
    readiness.stop();
  });

  it("names the failing checks, counts a hung check as failing, and notifies on change", async () => {
    let up = false;
    const readiness = createReadiness({
      checks: [
        { name: "db", check: () => (up ? Promise.resolve() : Promise.reject(new Error("down"))) },
        { name: "hung", check: () => new Promise<void>(() => undefined) },
      ],
      logger,
      intervalMs: 60_000,
      timeoutMs: 50,
    });
    let changes = 0;
    readiness.onChange(() => changes++);
    expect(await readiness.refresh()).toEqual({ ready: false, failing: ["db", "hung"] });
    up = true;
    expect(await readiness.refresh()).toEqual({ ready: false, failing: ["hung"] });
    expect(changes).toBe(1);
    readiness.stop();
  });

  it("shares one run between concurrent callers and honours maxAge", async () => {
    let runs = 0;
    const readiness = createReadiness({
      checks: [{ name: "db", check: () => Promise.resolve(void runs++) }],
      logger,
      intervalMs: 60_000,
    });
    await readiness.refresh();
    const before = runs;
    await Promise.all([readiness.refresh(), readiness.refresh(), readiness.refresh()]);
    expect(runs - before).toBe(1);
    await readiness.refresh(60_000);
    expect(runs - before).toBe(1);
    readiness.stop();
  });

  it("stays not ready once shutdown began", async () => {
    const readiness = createReadiness({
      checks: [{ name: "db", check: () => Promise.resolve() }],
      logger,
      intervalMs: 60_000,
    });
    expect((await readiness.refresh()).ready).toBe(true);
    let notified = false;
    readiness.onChange(() => (notified = true));
    readiness.beginShutdown();
    expect(notified).toBe(true);
    expect(await readiness.refresh()).toEqual({ ready: false, failing: ["shutting_down"] });
    readiness.stop();
  });
});
