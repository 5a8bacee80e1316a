import { describe, expect, it } from "vitest";
import { createRetryBudget } from "./retry-budget.js";

describe("retry budget", () => {
  it("allows a burst of the per-second floor times ten, then a share of requests", () => {
    let now = 0;
    const budget = createRetryBudget({ ratio: 0.2, minPerSecond: 1, now: () => now });
    let granted = 0;
    while (budget.tryRetry()) granted++;
    expect(granted).toBe(10);
    // 0.2 of a retry per request: 5 requests earn one.
    for (let i = 0; i < 4; i++) budget.onRequest();
    expect(budget.tryRetry()).toBe(false);
    budget.onRequest();
    expect(budget.tryRetry()).toBe(true);
    // Time refills the floor: one per second.
    now += 1000;
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
  });

  it("never banks more than the cap during a quiet spell", () => {
    let now = 0;
    const budget = createRetryBudget({ ratio: 0.2, minPerSecond: 2, now: () => now });
    now += 3_600_000;
    let granted = 0;
    while (budget.tryRetry()) granted++;
    expect(granted).toBe(20);
  });
});
