import { describe, expect, it } from "vitest";
import { createCircuitBreaker, type CircuitState } from "./circuit-breaker.js";

function clockedBreaker() {
  let now = 1_000;
  const changes: CircuitState[] = [];
  const breaker = createCircuitBreaker({
    failureThreshold: 3,
    openMs: 500,
    now: () => now,
    onStateChange: (state) => changes.push(state),
  });
  return { breaker, changes, advance: (ms: number) => (now += ms) };
}

describe("circuit breaker", () => {
  it("opens after the threshold of consecutive failures, not before", () => {
    const { breaker } = clockedBreaker();
    breaker.onFailure();
    breaker.onFailure();
    breaker.onSuccess(); // resets the count
    breaker.onFailure();
    breaker.onFailure();
    expect(breaker.state).toBe("closed");
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe("open");
    expect(breaker.canPass()).toBe(false);
    expect(breaker.tryAcquire()).toBe(false);
  });

  it("lets exactly one probe through after the open period; its success closes the circuit", () => {
    const { breaker, changes, advance } = clockedBreaker();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    advance(499);
    expect(breaker.tryAcquire()).toBe(false);
    advance(1);
    expect(breaker.state).toBe("half-open");
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false); // the probe is out
    breaker.onSuccess();
    expect(breaker.state).toBe("closed");
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a failed probe opens the circuit for another period", () => {
    const { breaker, advance } = clockedBreaker();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    advance(500);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
    expect(breaker.state).toBe("open");
    advance(499);
    expect(breaker.canPass()).toBe(false);
    advance(1);
    expect(breaker.canPass()).toBe(true);
  });

  it("a probe that never reports does not keep the circuit half-open forever", () => {
    const { breaker, advance } = clockedBreaker();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    advance(500);
    expect(breaker.tryAcquire()).toBe(true);
    advance(500);
    expect(breaker.tryAcquire()).toBe(true);
  });
});
