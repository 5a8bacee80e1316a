export type CircuitState = "closed" | "open" | "half-open";

/**
 * One upstream instance's circuit breaker. Closed: calls flow and consecutive failures are
 * counted. Open (after `failureThreshold` in a row): calls are refused at once — the gateway
 * answers 503 in microseconds instead of waiting on a dead instance. After `openMs` it turns
 * half-open: exactly one call (the probe) goes through; its success closes the circuit, its
 * failure opens it again for another `openMs`.
 */
export interface CircuitBreaker {
  readonly state: CircuitState;
  /** Would a call be let through now? Does not claim the half-open probe (used to pick instances). */
  canPass(): boolean;
  /** Claims the right to send one call now: always in closed, once per period in half-open. */
  tryAcquire(): boolean;
  onSuccess(): void;
  onFailure(): void;
}

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit; default 5. */
  failureThreshold?: number;
  /** How long the circuit stays open before a probe; default 5 s. */
  openMs?: number;
  onStateChange?: (state: CircuitState) => void;
  now?: () => number;
}

export function createCircuitBreaker(opts: CircuitBreakerOptions = {}): CircuitBreaker {
  const threshold = opts.failureThreshold ?? 5;
  const openMs = opts.openMs ?? 5_000;
  const now = opts.now ?? Date.now;
  let state: CircuitState = "closed";
  let failures = 0;
  let openedAt = 0;
  // When the half-open probe was let through; a probe that never reports (its caller vanished)
  // must not keep the circuit half-open forever, so another may go after `openMs`.
  let probeSentAt = -Infinity;

  const enter = (next: CircuitState): void => {
    if (state === next) return;
    state = next;
    opts.onStateChange?.(next);
  };

  const refreshOpen = (): void => {
    if (state === "open" && now() - openedAt >= openMs) {
      enter("half-open");
      probeSentAt = -Infinity;
    }
  };

  return {
    get state() {
      refreshOpen();
      return state;
    },
    canPass() {
      refreshOpen();
      if (state === "closed") return true;
      return state === "half-open" && now() - probeSentAt >= openMs;
    },
    tryAcquire() {
      refreshOpen();
      if (state === "closed") return true;
      if (state === "half-open" && now() - probeSentAt >= openMs) {
        probeSentAt = now();
        return true;
      }
      return false;
    },
    onSuccess() {
      failures = 0;
      // A call that started before the circuit opened proves little; only the probe closes it.
      if (state === "half-open") enter("closed");
    },
    onFailure() {
      failures++;
      if (state === "half-open" || (state === "closed" && failures >= threshold)) {
        openedAt = now();
        enter("open");
      }
    },
  };
}
