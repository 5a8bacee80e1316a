import type { Logger } from "@zero/kit/log";
import { startPeriodicJob, type PeriodicJob } from "@zero/kit/periodic";
import { sql, type Kysely, type Transaction } from "kysely";
import type { DB, PaymentRow } from "./db/schema.js";
import { findPayment, updatePayment } from "./payment-store.js";
import { transitionPayment } from "./payment-transition.js";
import type { ChargeLookup, PaymentProvider } from "./provider.js";

// The reconciliation sweep. ProcessPayment commits `pending → processing`, calls the provider, and
// records the answer in a second transaction; a process that dies in between leaves the payment
// `processing` with nobody to finish it (the provider's webhook only comes for asynchronous charges,
// and only if it is delivered). The sweep asks the provider what became of the charge made under
// the payment's id (the provider idempotency key) for every payment `processing` and untouched for
// longer than a threshold, and records the answer as ProcessPayment would have.
//
// Several replicas may sweep at once, and a webhook or a late ProcessPayment may settle the same
// payment meanwhile: the provider is asked outside any transaction (no row lock held over a network
// call), then the payment is locked (`FOR UPDATE`) and changed only if it is still the row that was
// looked up — `processing`, with the same `updated_at`. Whoever comes second sees the change and
// leaves it: one transition, one event.

/** Recorded as the actor of the transitions the sweep makes (next to `user:<id>`, `provider`, …). */
export const RECONCILIATION_ACTOR = "system:reconciliation";

/** The failure code of a payment whose charge never reached the provider. */
export const NO_PROVIDER_RECORD = "provider_no_record";

const PAGE = 100;

export type ReconciliationOutcome =
  /** The provider had charged it: `completed`. */
  | "completed"
  /** The provider had declined it, or no charge reached it: `failed`. */
  | "failed"
  /** Still settling at the provider: left `processing` for its webhook (provider id recorded). */
  | "pending"
  /** Changed since it was looked up (a webhook, ProcessPayment, another replica): left alone. */
  | "changed"
  /** The provider's answer contradicts the payment's record: left for a person (logged). */
  | "unexplained"
  /** The lookup or the write failed: tried again at the next sweep. */
  | "error";

export type SweepResult = Record<ReconciliationOutcome, number>;

export interface ReconciliationDeps {
  db: Kysely<DB>;
  provider: Pick<PaymentProvider, "lookupCharge">;
  logger: Logger;
}

/**
 * One sweep over the payments `processing` whose last update is older than `olderThanMs` (by the
 * database's clock: replicas' clocks may disagree). Each is handled on its own; one failing does not
 * stop the others. Stops between payments once `signal` is aborted.
 */
export async function reconcileStuckPayments(
  deps: ReconciliationDeps,
  opts: { olderThanMs: number; signal?: AbortSignal },
): Promise<SweepResult> {
  const result: SweepResult = { completed: 0, failed: 0, pending: 0, changed: 0, unexplained: 0, error: 0 };
  // Keyset over the id, so each stale payment is visited at most once per sweep, even those left
  // `processing` (pending at the provider, or failing to reconcile).
  let afterId: string | undefined;
  for (;;) {
    const page = await findStale(deps.db, opts.olderThanMs, afterId);
    for (const stale of page) {
      if (opts.signal?.aborted) return result;
      result[await reconcileOne(deps, stale)]++;
    }
    if (page.length < PAGE) return result;
    afterId = page.at(-1)!.id;
  }
}

type Stale = Pick<PaymentRow, "id" | "updated_at">;

async function findStale(db: Kysely<DB>, olderThanMs: number, afterId: string | undefined): Promise<Stale[]> {
  let query = db
    .selectFrom("payments")
    .select(["id", "updated_at"])
    .where("status", "=", "processing")
    .where("deleted_at", "is", null)
    .where("updated_at", "<", sql<Date>`now() - ${`${olderThanMs} milliseconds`}::interval`);
  if (afterId !== undefined) query = query.where("id", ">", afterId);
  return query.orderBy("id").limit(PAGE).execute();
}

async function reconcileOne(deps: ReconciliationDeps, stale: Stale): Promise<ReconciliationOutcome> {
  const { db, provider, logger } = deps;
  try {
    const found = await provider.lookupCharge(stale.id);
    const outcome = await db.transaction().execute(async (trx) => {
      const row = await findPayment(trx, stale.id, { forUpdate: true });
      if (
        row === undefined ||
        row.status !== "processing" ||
        row.updated_at.getTime() !== stale.updated_at.getTime()
      ) {
        return "changed";
      }
      return record(trx, row, found);
    });
    const log = { payment_id: stale.id, provider_status: found.status, outcome };
    if (outcome === "unexplained") {
      logger.error(log, "reconciliation: the provider's answer contradicts the payment; left for review");
    } else if (outcome === "completed" || outcome === "failed") {
      logger.info(log, "reconciliation: payment settled from the provider's record");
    } else {
      // A slow asynchronous payment is looked at every sweep until its webhook comes: not news.
      logger.debug(log, "reconciliation: payment left as it is");
    }
    return outcome;
  } catch (err) {
    logger.warn({ err, payment_id: stale.id }, "reconciliation: payment not reconciled; next sweep retries");
    return "error";
  }
}

/** Records the provider's answer on the locked `processing` payment, as ProcessPayment would have. */
async function record(
  trx: Transaction<DB>,
  row: PaymentRow,
  found: ChargeLookup,
): Promise<ReconciliationOutcome> {
  const recorded = row.provider_payment_id;
  if (found.status === "not_found") {
    // A recorded provider id proves the charge reached the provider: a lookup that cannot find it
    // says something is wrong with the lookup (the simulated provider forgets on restart), not that
    // no money moved. Failing the payment could hide a charged card.
    if (recorded !== null) return "unexplained";
    // No charge reached the provider under this key, so no money moved: the payment fails. It is not
    // charged again, although the idempotency key would make a retry safe against double charging:
    // the card number is gone (card data lives only in the request's memory), and the customer, told
    // nothing for minutes, may well have paid another way meanwhile. They can pay with a new payment.
    await transitionPayment(trx, row, "failed", {
      actor: RECONCILIATION_ACTOR,
      reason: "reconciliation: the charge never reached the provider",
      patch: {
        failure_code: NO_PROVIDER_RECORD,
        failure_message: "The payment was interrupted before it was charged. No money was taken.",
      },
    });
    return "failed";
  }
  if (recorded !== null && recorded !== found.providerPaymentId) return "unexplained";
  const patch = { provider_payment_id: found.providerPaymentId };
  switch (found.status) {
    case "succeeded":
      await transitionPayment(trx, row, "completed", {
        actor: RECONCILIATION_ACTOR,
        reason: "reconciliation: the provider reports the charge succeeded",
        patch,
      });
      return "completed";
    case "failed":
      await transitionPayment(trx, row, "failed", {
        actor: RECONCILIATION_ACTOR,
        reason: `reconciliation: the provider reports the charge failed: ${found.failureCode}`,
        patch: { ...patch, failure_code: found.failureCode, failure_message: found.failureMessage },
      });
      return "failed";
    case "pending":
      // The webhook settles it; it finds the payment by the provider id, so record that id if the
      // crash lost it (the webhook worker retries until it is there, then gives up).
      if (recorded === null) await updatePayment(trx, row.id, patch);
      return "pending";
  }
}

/** Sweeps at start (a restart after a crash is when stuck payments appear) and every `intervalMs`. */
export function startReconciliation(
  opts: ReconciliationDeps & {
    intervalMs: number;
    olderThanMs: number;
    /** Nudged after a sweep that appended events. */
    relay: { wake(): void };
  },
): PeriodicJob {
  const { logger } = opts;
  // `stop()` ends the sweep under way after its current payment.
  return startPeriodicJob({
    intervalMs: opts.intervalMs,
    atStart: true,
    logger,
    failureMessage: "reconciliation sweep failed (database unavailable?); next sweep retries",
    async run(signal) {
      const result = await reconcileStuckPayments(opts, { olderThanMs: opts.olderThanMs, signal });
      if (result.completed + result.failed > 0) opts.relay.wake();
      if (result.completed + result.failed + result.unexplained + result.error > 0) {
        logger.info(result, "reconciliation sweep done");
      }
    },
  });
}
