import type { Logger } from "@zero/kit/log";
import type { Kysely } from "kysely";
import type { DB } from "./db/schema.js";
import type { SigningKeyStore } from "./tokens/signing-keys.js";

// Periodic work of every replica (each step is safe to run concurrently): signing-key rotation
// steps that are due, and deleting what no longer serves a purpose (storage limitation, GDPR
// art. 5(1)(e)) — ended or expired sessions a day after they ended (the day keeps "signed out
// by reuse detection" visible to the user and support), spent or expired mail codes and login
// challenges.

const KEEP_ENDED_MS = 86_400_000;

export function startMaintenance(deps: {
  db: Kysely<DB>;
  signingKeys: SigningKeyStore;
  intervalMs: number;
  logger: Logger;
}): { runOnce(): Promise<void>; stop(): Promise<void> } {
  const { db, signingKeys, logger } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const runOnce = async () => {
    const keys = await signingKeys.promoteDue();
    if (keys.activated !== undefined) logger.info({ kid: keys.activated }, "signing key activated");
    for (const kid of keys.retired) logger.info({ kid }, "signing key retired");
    const cutoff = new Date(Date.now() - KEEP_ENDED_MS);
    const now = new Date();
    await db
      .deleteFrom("sessions")
      .where((eb) => eb.or([eb("revoked_at", "<", cutoff), eb("expires_at", "<", cutoff)]))
      .execute();
    await db
      .deleteFrom("one_time_codes")
      .where((eb) => eb.or([eb("used_at", "is not", null), eb("expires_at", "<", now)]))
      .execute();
    await db.deleteFrom("login_challenges").where("expires_at", "<", now).execute();
  };

  const tick = () => {
    running = runOnce()
      .catch((error: unknown) =>
        logger.warn({ err: error }, "maintenance pass failed; retrying next interval"),
      )
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, deps.intervalMs);
      });
  };
  timer = setTimeout(tick, deps.intervalMs);

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
