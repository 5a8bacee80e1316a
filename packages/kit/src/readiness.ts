import type { Logger } from "./log.js";

/** A dependency the service needs to do its work (database, NATS, ...); `check` rejects when it is down. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export interface ReadinessState {
  ready: boolean;
  /** Names of the failing checks; `["shutting_down"]` once shutdown began. */
  failing: string[];
}

export interface Readiness {
  /** The last known state, without running the checks. */
  current(): ReadinessState;
  /** Runs the checks unless the last run is younger than `maxAgeMs` (concurrent callers share a run). */
  refresh(maxAgeMs?: number): Promise<ReadinessState>;
  /** Called whenever `ready` flips. Returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** Not ready from now on, whatever the checks say: load balancers stop sending new work. */
  beginShutdown(): void;
  /** Stops polling. */
  stop(): void;
}

export interface ReadinessOptions {
  checks: ReadinessCheck[];
  logger: Logger;
  /** Poll period, so health watchers hear about changes without asking (default 2 s). */
  intervalMs?: number;
  /** A check that has not answered within this time counts as failing (default 2 s). */
  timeoutMs?: number;
}

const SHUTTING_DOWN: ReadinessState = { ready: false, failing: ["shutting_down"] };

export function createReadiness(opts: ReadinessOptions): Readiness {
  const intervalMs = opts.intervalMs ?? 2000;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const listeners = new Set<() => void>();
  // Not ready until the checks answered once (immediately ready when there is nothing to check).
  let state: ReadinessState =
    opts.checks.length === 0
      ? { ready: true, failing: [] }
      : { ready: false, failing: opts.checks.map((c) => c.name) };
  let checkedAt = opts.checks.length === 0 ? Infinity : -Infinity;
  let running: Promise<ReadinessState> | undefined;
  let shuttingDown = false;
  let timer: NodeJS.Timeout | undefined;

  const publish = (next: ReadinessState): void => {
    const changed = next.ready !== state.ready || next.failing.join() !== state.failing.join();
    state = next;
    if (!changed) return;
    for (const listener of listeners) listener();
  };

  const runOne = async (check: ReadinessCheck): Promise<string | undefined> => {
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        check.check(),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return undefined;
    } catch (error) {
      // Logged only when it starts failing, not on every poll.
      if (checkedAt === -Infinity) {
        // At start-up a dependency still connecting is expected, not an incident: no stack trace.
        const reason = error instanceof Error ? error.message : String(error);
        opts.logger.info({ check: check.name, reason }, "not ready yet");
      } else if (!state.failing.includes(check.name)) {
        opts.logger.warn({ check: check.name, err: error }, "readiness check failing");
      }
      return check.name;
    } finally {
      clearTimeout(timeout);
    }
  };

  const runChecks = async (): Promise<ReadinessState> => {
    const results = await Promise.all(opts.checks.map(runOne));
    const failing = results.filter((name): name is string => name !== undefined);
    const recovered = state.failing.filter((name) => !failing.includes(name) && checkedAt !== -Infinity);
    for (const name of recovered) opts.logger.info({ check: name }, "readiness check passing again");
    checkedAt = Date.now();
    if (!shuttingDown) publish({ ready: failing.length === 0, failing });
    return state;
  };

  const refresh = (maxAgeMs = 0): Promise<ReadinessState> => {
    if (shuttingDown) return Promise.resolve(state);
    if (Date.now() - checkedAt < maxAgeMs) return Promise.resolve(state);
    running ??= runChecks().finally(() => {
      running = undefined;
    });
    return running;
  };

  if (opts.checks.length > 0) {
    void refresh();
    timer = setInterval(() => void refresh(), intervalMs);
    // Polling alone must not keep a process alive that is otherwise done.
    timer.unref();
  }

  return {
    current: () => state,
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    beginShutdown() {
      if (shuttingDown) return;
      shuttingDown = true;
      publish(SHUTTING_DOWN);
    },
    stop() {
      clearInterval(timer);
      listeners.clear();
    },
  };
}
