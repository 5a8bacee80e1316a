import { describe, expect, it } from "vitest";
import { startPeriodicJob } from "../src/periodic.js";
import { captureLogger, waitFor } from "./events-fixtures.js";

describe("startPeriodicJob", () => {
  it("runs at start when asked, then every interval, one run at a time; a failure is logged and retried", async () => {
    const log = captureLogger();
    let runs = 0;
    let concurrent = 0;
    let overlapped = false;
    const job = startPeriodicJob({
      intervalMs: 20,
      atStart: true,
      logger: log.logger,
      failureMessage: "the sweep failed",
      async run() {
        runs++;
        concurrent++;
        if (concurrent > 1) overlapped = true;
        await new Promise((resolve) => setTimeout(resolve, 30)); // longer than the interval
        concurrent--;
        if (runs === 2) throw new Error("database unavailable");
      },
    });
    await waitFor("four runs", () => runs >= 4);
    await job.stop();
    expect(overlapped).toBe(false);
    expect(log.lines.filter((l) => l.msg === "the sweep failed")).toHaveLength(1);
  });

  it("waits a whole interval before the first run otherwise", async () => {
    let runs = 0;
    const job = startPeriodicJob({
      intervalMs: 60_000,
      atStart: false,
      logger: captureLogger().logger,
      failureMessage: "failed",
      run: () => Promise.resolve(void runs++),
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await job.stop();
    expect(runs).toBe(0);
  });

  it("stop() aborts the run under way and waits for it to return", async () => {
    let started = false;
    let returned = false;
    const job = startPeriodicJob({
      intervalMs: 60_000,
      atStart: true,
      logger: captureLogger().logger,
      failureMessage: "failed",
      async run(signal) {
        started = true;
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        await new Promise((resolve) => setTimeout(resolve, 20)); // winding down
        returned = true;
      },
    });
    await waitFor("the run started", () => started);
    await job.stop();
    expect(returned).toBe(true);
  });
});
