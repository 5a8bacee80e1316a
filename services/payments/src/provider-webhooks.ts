import { DomainError } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { sql, type Kysely, type Transaction } from "kysely";
import type { DB, PaymentRow, ProviderEventRow } from "./db/schema.js";
import { findPayment, findPaymentByProviderId } from "./payment-store.js";
import { transitionPayment } from "./payment-transition.js";

// Provider webhooks, in two halves. `receiveProviderEvent` runs in the request: the signature is
// already verified; the event is parsed and stored under its id (a replayed id is recognised by
// the primary key and ignored), and the provider gets its 2xx at once. The worker applies stored
// events afterwards, each in its own transaction, idempotently (a payment already settled is left
// alone), retrying with backoff what cannot be applied yet — e.g. a webhook that overtook the
// ProcessPayment call which will record the provider's id.

const MAX_BODY_BYTES = 64 * 1024;
const MAX_ATTEMPTS = 10;
const BATCH = 20;

export interface ParsedProviderEvent {
  id: string;
  type: string;
  payload: unknown;
}

/** The event's id and type from the raw body; INVALID_ARGUMENT when it is not a provider event. */
export function parseProviderEvent(body: Uint8Array): ParsedProviderEvent {
  if (body.byteLength > MAX_BODY_BYTES) {
    throw new DomainError("invalid_argument", `the webhook body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw new DomainError("invalid_argument", "the webhook body is not UTF-8 JSON", {
      reason: "WEBHOOK_MALFORMED",
    });
  }
  const { id, type } = (typeof payload === "object" && payload !== null ? payload : {}) as {
    id?: unknown;
    type?: unknown;
  };
  if (
    typeof id !== "string" ||
    !/^[\w.-]{1,128}$/.test(id) ||
    typeof type !== "string" ||
    type.length > 128
  ) {
    throw new DomainError(
      "invalid_argument",
      "the webhook body must be an event with a string `id` and `type`",
      {
        reason: "WEBHOOK_MALFORMED",
      },
    );
  }
  return { id, type, payload };
}

/** Stores the event; `duplicate` when its id was received before (nothing more happens then). */
export async function receiveProviderEvent(
  db: Kysely<DB>,
  event: ParsedProviderEvent,
): Promise<{ duplicate: boolean }> {
  const inserted = await db
    .insertInto("provider_events")
    .values({ event_id: event.id, type: event.type, payload: JSON.stringify(event.payload) })
    .onConflict((oc) => oc.column("event_id").doNothing())
    .returning("event_id")
    .executeTakeFirst();
  return { duplicate: inserted === undefined };
}

export interface WebhookWorker {
  /** Apply now rather than at the next poll. */
  wake(): void;
  stop(): Promise<void>;
}

export function startWebhookWorker(opts: {
  db: Kysely<DB>;
  logger: Logger;
  /** Nudged after a commit that appended events. */
  relay: { wake(): void };
  pollMs?: number;
}): WebhookWorker {
  const { db, logger } = opts;
  const pollMs = opts.pollMs ?? 1_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wakeUp: (() => void) | undefined;
  let again = false;

  /** Applies the oldest due event in its own transaction; false when none is due. */
  const applyOne = async (): Promise<boolean> => {
    let current: ProviderEventRow | undefined;
    try {
      return await db.transaction().execute(async (trx) => {
        current = await trx
          .selectFrom("provider_events")
          .selectAll()
          .where("processed_at", "is", null)
          .where("next_attempt_at", "<=", sql<Date>`now()`)
          .orderBy("received_at")
          .limit(1)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (!current) return false;
        const outcome = await applyProviderEvent(trx, current);
        await trx
          .updateTable("provider_events")
          .set({ processed_at: sql<Date>`now()`, outcome, attempts: current.attempts + 1, last_error: null })
          .where("event_id", "=", current.event_id)
          .execute();
        logger.info({ event_id: current.event_id, type: current.type, outcome }, "provider event applied");
        return true;
      });
    } catch (error) {
      if (current === undefined) throw error;
      // The apply rolled back; record the attempt (outside it) and retry later with backoff.
      const attempts = current.attempts + 1;
      const giveUp = attempts >= MAX_ATTEMPTS;
      await db
        .updateTable("provider_events")
        .set({
          attempts,
          last_error: (error instanceof Error ? error.message : String(error)).slice(0, 500),
          next_attempt_at: sql<Date>`now() + ${`${Math.min(250 * 2 ** attempts, 60_000)} milliseconds`}::interval`,
          ...(giveUp ? { processed_at: sql<Date>`now()`, outcome: "gave up" } : {}),
        })
        .where("event_id", "=", current.event_id)
        .execute();
      if (giveUp)
        logger.error(
          { err: error, event_id: current.event_id },
          "provider event could not be applied: gave up",
        );
      else
        logger.warn(
          { err: error, event_id: current.event_id, attempts },
          "provider event not applied yet; will retry",
        );
      return true;
    }
  };

  const applyDue = async (): Promise<number> => {
    let handled = 0;
    while (handled < BATCH && (await applyOne())) handled++;
    return handled;
  };

  const loop = (async () => {
    while (!stopped) {
      again = false;
      try {
        const applied = await applyDue();
        if (applied > 0) opts.relay.wake();
        if (applied === BATCH) continue;
      } catch (err) {
        logger.warn({ err }, "provider events: pass failed (database unavailable?); retrying");
      }
      if (stopped) break;
      if (again) continue;
      await new Promise<void>((resolve) => {
        wakeUp = resolve;
        timer = setTimeout(resolve, pollMs);
      });
      clearTimeout(timer);
      wakeUp = undefined;
    }
  })();

  return {
    wake() {
      again = true;
      wakeUp?.();
    },
    async stop() {
      stopped = true;
      wakeUp?.();
      await loop;
    },
  };
}

interface PaymentIntentObject {
  id?: unknown;
  amount?: unknown;
  currency?: unknown;
  metadata?: { payment_id?: unknown };
  last_payment_error?: { code?: unknown; message?: unknown } | null;
}

/** Applies one stored event; returns what happened (kept in `provider_events.outcome`). Throws to retry. */
export async function applyProviderEvent(trx: Transaction<DB>, event: ProviderEventRow): Promise<string> {
  if (event.type !== "payment_intent.succeeded" && event.type !== "payment_intent.payment_failed") {
    return `ignored: ${event.type} is not handled`;
  }
  const object = ((event.payload as { data?: { object?: unknown } }).data?.object ??
    {}) as PaymentIntentObject;
  if (typeof object.id !== "string") return "ignored: no payment_intent id";

  let payment: PaymentRow | undefined = await findPaymentByProviderId(trx, object.id);
  if (payment === undefined && typeof object.metadata?.payment_id === "string") {
    payment = await findPayment(trx, object.metadata.payment_id, { forUpdate: true });
    if (payment !== undefined && payment.provider_payment_id === null && payment.status === "processing") {
      // The webhook overtook ProcessPayment's own commit of the provider's answer: try again shortly.
      throw new Error("the payment's provider id is not recorded yet");
    }
    if (payment !== undefined && payment.provider_payment_id !== object.id) payment = undefined;
  }
  if (payment === undefined) return "ignored: no payment has this provider id";
  if (
    String(object.amount) !== payment.amount ||
    String(object.currency).toUpperCase() !== payment.currency
  ) {
    return `rejected: amount or currency differs from payment ${payment.id}`;
  }
  if (payment.status !== "processing") return `ignored: payment ${payment.id} is already ${payment.status}`;

  const reason = `provider event ${event.event_id}`;
  if (event.type === "payment_intent.succeeded") {
    await transitionPayment(trx, payment, "completed", { actor: "provider", reason });
    return `applied: payment ${payment.id} completed`;
  }
  const error = object.last_payment_error ?? {};
  await transitionPayment(trx, payment, "failed", {
    actor: "provider",
    reason,
    patch: {
      failure_code: typeof error.code === "string" ? error.code.slice(0, 64) : "payment_failed",
      failure_message:
        typeof error.message === "string"
          ? error.message.slice(0, 300)
          : "The payment could not be completed.",
    },
  });
  return `applied: payment ${payment.id} failed`;
}
