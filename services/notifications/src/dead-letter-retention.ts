import type { Logger } from "@zero/kit/log";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { deleteDeadLettersOlderThan } from "./dead-letter-store.js";

// Dead letters are kept as long as their copy in ZERO_DLQ (the stream's max_age, 30 days by
// default): an admin has that long to replay one, after which it is deleted here too — they hold
// events' personal data, which must not outlive its use. Every replica sweeps; the delete is
// idempotent, so overlapping sweeps only repeat a cheap indexed statement.

/** Hourly: retention is counted in days, so a dead letter outlives its period by an hour at most. */
const SWEEP_INTERVAL_MS = 60 * 60_000;

export interface DeadLetterRetention {
  /** Stops the timer and waits for a sweep in progress (the pool closes after this). */
  stop(): Promise<void>;
}

export function startDeadLetterRetention(opts: {
  db: Kysely<DB>;
  logger: Logger;
  retentionMs: number;
}): DeadLetterRetention {
  const logger = opts.logger.child({ component: "dead-letter-retention" });
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const sweep = async (): Promise<void> => {
    const deleted = await deleteDeadLettersOlderThan(opts.db, opts.retentionMs);
    if (deleted > 0) logger.info({ deleted }, "expired dead letters deleted");
    else logger.debug("no expired dead letters");
  };
  const tick = () => {
    if (stopped) return;
    running = sweep().catch((err: unknown) => logger.warn({ err }, "deleting expired dead letters failed"));
  };
  // Once at start as well: a service redeployed more often than the interval would never sweep.
  const first = setTimeout(tick, 0);
  const timer = setInterval(tick, SWEEP_INTERVAL_MS);
  first.unref();
  timer.unref();

  return {
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(timer);
      await running;
    },
  };
}
