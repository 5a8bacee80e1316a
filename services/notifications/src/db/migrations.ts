import { outboxMigration } from "@zero/kit/events/outbox";
import type { Migration } from "kysely";
import * as init from "./migrations/0001-init.js";
import * as defaultTemplates from "./migrations/0002-default-templates.js";

// Explicit list (not a folder scan): works the same under vitest, tsx and a build. Names sort in
// the order they apply. The kit's tables come first: the consumers' inbox lives in kit_inbox
// (this service publishes no events, so kit_outbox stays empty).
export const migrations: Record<string, Migration> = {
  "0000-kit-outbox": outboxMigration,
  "0001-init": init,
  "0002-default-templates": defaultTemplates,
};
