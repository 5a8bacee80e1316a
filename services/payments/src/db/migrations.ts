import { outboxMigration } from "@zero/kit/events/outbox";
import type { Migration } from "kysely";
import * as init from "./migrations/0001-init.js";
import * as processingIndex from "./migrations/0002-processing-index.js";

// Explicit list (not a folder scan): works the same under vitest, tsx and a build. Names sort in
// the order they apply; the kit's outbox/inbox tables come first so any migration may rely on them.
export const migrations: Record<string, Migration> = {
  "0000-kit-outbox": outboxMigration,
  "0001-init": init,
  "0002-processing-index": processingIndex,
};
