/**
 * Caps retries so that they cannot multiply load on a struggling upstream (a retry storm): each
 * request deposits `ratio` of a retry, time adds `minPerSecond` (so a quiet gateway can still
 * retry), and each retry withdraws one. The balance is capped at ten seconds' worth of the
 * minimum, so a long calm spell cannot bank a burst. With the defaults, retries stay under
 * 20 % of traffic plus 10 per second — the figures Finagle and Envoy use.
 */
export interface RetryBudget {
  /** Called once per original request (not per retry). */
  onRequest(): void;
  /** Withdraws one retry when the budget allows it. */
  tryRetry(): boolean;
}

export interface RetryBudgetOptions {
  ratio?: number;
  minPerSecond?: number;
  now?: () => number;
}

export function createRetryBudget(opts: RetryBudgetOptions = {}): RetryBudget {
  const ratio = opts.ratio ?? 0.2;
  const minPerSecond = opts.minPerSecond ?? 10;
  const now = opts.now ?? Date.now;
  const cap = Math.max(1, minPerSecond * 10);
  let balance = cap;
  let refilledAt = now();

  const refill = (): void => {
    const at = now();
    balance = Math.min(cap, balance + ((at - refilledAt) / 1000) * minPerSecond);
    refilledAt = at;
  };

  return {
    onRequest() {
      balance = Math.min(cap, balance + ratio);
    },
    tryRetry() {
      refill();
      if (balance < 1) return false;
      balance -= 1;
      return true;
    },
  };
}
