import type { Logger } from "./log.js";

export interface Lifecycle {
  /**
   * Registers something to close on shutdown. Closers run one at a time in REVERSE order of
   * registration: what started last (the server) stops first, what everything needs (the pool) last.
   */
  defer(name: string, close: () => Promise<void>): void;
  /** Resolves once a signal arrived and every closer ran; the process then exits. */
  wait(): Promise<void>;
}

export interface LifecycleOptions {
  /** Time for all closers together (default 10 s); give the server's own drain less than this. */
  deadlineMs?: number;
  signals?: NodeJS.Signals[];
}

/**
 * Graceful shutdown for a service's `main.ts`: on SIGTERM/SIGINT, run the closers, then exit 0 —
 * or 1 when a closer failed or the deadline passed (the orchestrator should know it was not clean).
 */
export function createLifecycle(logger: Logger, opts: LifecycleOptions = {}): Lifecycle {
  const deadlineMs = opts.deadlineMs ?? 10_000;
  const closers: { name: string; close: () => Promise<void> }[] = [];
  let stopping = false;
  let markDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    markDone = resolve;
  });

  const exit = (code: number): void => {
    markDone();
    // Let code awaiting wait() run its last lines before the process goes.
    setImmediate(() => process.exit(code));
  };

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    logger.info({ signal, closers: closers.length, deadline_ms: deadlineMs }, "shutting down");
    const timer = setTimeout(() => {
      logger.error(
        { deadline_ms: deadlineMs },
        "shutdown deadline passed: exiting without waiting for the rest",
      );
      exit(1);
    }, deadlineMs);
    let failed = false;
    for (const { name, close } of [...closers].reverse()) {
      const startedAt = performance.now();
      try {
        await close();
        logger.info({ closer: name, duration_ms: Math.round(performance.now() - startedAt) }, "closed");
      } catch (error) {
        failed = true;
        logger.error({ closer: name, err: error }, "closing failed");
      }
    }
    clearTimeout(timer);
    logger.info({ clean: !failed }, "shutdown complete");
    exit(failed ? 1 : 0);
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl-C or an orchestrator repeating SIGTERM: the deadline already bounds the wait.
      logger.warn({ signal }, "already shutting down");
      return;
    }
    stopping = true;
    void shutdown(signal);
  };
  for (const signal of opts.signals ?? ["SIGTERM", "SIGINT"]) process.on(signal, onSignal);

  return {
    defer(name, close) {
      closers.push({ name, close });
    },
    wait: () => done,
  };
}
