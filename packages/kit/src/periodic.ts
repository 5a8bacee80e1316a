import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";

export interface PeriodicJob {
  /**
   * Ends the schedule, aborts the signal of the run under way and waits for it to return: call it
   * before closing what the job uses (the pool, the provider).
   */
  stop(): Promise<void>;
}

export interface PeriodicJobOptions {
  intervalMs: number;
  /** Also run once at start (a sweep that only ran on an interval would never run in a service redeployed more often). */
  atStart: boolean;
  logger: Logger;
  /** Logged (warn, with the error) when a run throws; the next run retries. */
  failureMessage: string;
  /** One run; long ones should stop early when `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

/**
 * A service's background sweep (pruning, retention, reconciliation): runs one at a time, at most
 * every `intervalMs` after the previous run ended, never keeps the process alive, and logs a failed
 * run instead of failing the service.
 */
export function startPeriodicJob(opts: PeriodicJobOptions): PeriodicJob {
  const stopping = new AbortController();
  const { signal } = stopping;
  const pause = () => sleep(opts.intervalMs, undefined, { signal, ref: false }).catch(() => undefined);
  const loop = (async () => {
    if (!opts.atStart) await pause();
    while (!signal.aborted) {
      try {
        await opts.run(signal);
      } catch (err) {
        if (!signal.aborted) opts.logger.warn({ err }, opts.failureMessage);
      }
      await pause();
    }
  })();
  return {
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
