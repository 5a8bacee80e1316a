import type { Logger } from "@zero/kit/log";
import { startPeriodicJob, type PeriodicJob } from "@zero/kit/periodic";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import { deleteDeadLettersOlderThan } from "./dead-letter-store.js";

// Dead letters are kept as long as their copy in ZERO_DLQ (the stream's max_age, 30 days by
// default): an admin has that long to replay one, after which it is deleted here too — they hold
// events' personal data, which must not outlive its use. Every replica sweeps; the delete is
// idempotent, so overlapping sweeps only repeat a cheap indexed statement.

/** Hourly: retention is counted in days, so a dead letter outlives its period by an hour at most. */
const SWEEP_INTERVAL_MS = 60 * 60_000;

/** Sweeps at start and hourly; `stop()` waits for a sweep in progress (the pool closes after it). */
export function startDeadLetterRetention(opts: {
  db: Kysely<DB>;
  logger: Logger;
  retentionMs: number;
}): PeriodicJob {
  const logger = opts.logger.child({ component: "dead-letter-retention" });
  return startPeriodicJob({
    intervalMs: SWEEP_INTERVAL_MS,
    atStart: true,
    logger,
    failureMessage: "deleting expired dead letters failed",
    async run() {
      const deleted = await deleteDeadLettersOlderThan(opts.db, opts.retentionMs);
      if (deleted > 0) logger.info({ deleted }, "expired dead letters deleted");
      else logger.debug("no expired dead letters");
    },
  });
}
