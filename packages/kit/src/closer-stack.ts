import type { Logger } from "./log.js";

export interface CloserStack {
  /** Registers something to close. Push each resource right after it is opened. */
  push(name: string, close: () => Promise<void> | void): void;
  /**
   * Runs the closers one at a time in REVERSE order of `push` — what started last (the server) stops
   * first, what everything needs (the pool) last — and empties the stack, so a second call does
   * nothing. A failing closer is logged and the others still run; the first failure is rethrown
   * once all have run.
   */
  closeAll(): Promise<void>;
}

/**
 * The shutdown order of a service's in-process start (`startXServer`): its `close()` and the clean-up
 * of a half-started service share one list, so nothing opened is left behind on either path.
 */
export function createCloserStack(logger: Logger): CloserStack {
  const closers: { name: string; close: () => Promise<void> | void }[] = [];
  return {
    push(name, close) {
      closers.push({ name, close });
    },
    async closeAll() {
      let failure: Error | undefined;
      for (const { name, close } of closers.splice(0).reverse()) {
        try {
          await close();
        } catch (error) {
          logger.error({ err: error, component: name }, "failed to close");
          failure ??= error instanceof Error ? error : new Error(`closing ${name} failed: ${String(error)}`);
        }
      }
      if (failure !== undefined) throw failure;
    },
  };
}
