import type { Logger } from "@zero/kit/log";
import { extractTraceContext } from "@zero/kit/tracing";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { Kysely } from "kysely";
import type { DB, DeliveryRow } from "./db/schema.js";
import { redactEmail, redactEmailsIn, retryDelayMs, type RetryPolicy } from "./delivery.js";
import { lockNextDueDelivery, markFailed, markRetry, markSent } from "./delivery-store.js";
import { MailSendError, type MailTransport } from "./mail-transport.js";
import type { RecipientLimit } from "./recipient-limit.js";

// Sends what the queue holds. Each of `concurrency` slots repeatedly takes ONE due delivery with
// FOR UPDATE SKIP LOCKED and keeps that transaction open while it talks to the SMTP server, then
// records the outcome and commits. Why this shape:
//
// - A crash (SIGKILL, OOM, power) before the commit aborts the transaction when the connection
//   drops: the row is QUEUED again at once, with no lease to expire, and the next worker sends it.
//   Nothing decided is ever lost.
// - A message is sent twice only if the process dies after the SMTP server accepted it (its 250
//   reply) and before our commit reached Postgres — one round trip, about a millisecond — or if
//   Postgres refuses that commit. The resend carries the same Message-ID (`<delivery id@domain>`),
//   so receivers that de-duplicate on it (as large mailbox providers do) still show one message.
//   SMTP offers nothing stronger (RFC 1047): it has no way to ask "did you get this one?".
// - Replicas share the queue without coordination: SKIP LOCKED never hands a row to two workers.

export interface DeliveryWorkerOptions {
  db: Kysely<DB>;
  transport: MailTransport;
  limit: RecipientLimit;
  logger: Logger;
  /** The From header, e.g. `Zero <no-reply@zero.local>`. */
  from: string;
  retry: RetryPolicy;
  /** Messages sent at once (each holds one pooled Postgres connection while sending). */
  concurrency: number;
  /** How often an idle worker looks for due messages (deferred and retried ones fall due later). */
  pollMs: number;
}

export interface DeliveryWorker {
  /** Look for work now (after a commit that queued mail) instead of at the next poll. */
  wake(): void;
  /** Stops taking messages and waits for the ones being sent. */
  stop(): Promise<void>;
}

// When the database or Redis is unreachable: wait this long before trying again.
const TROUBLE_BACKOFF_MS = 2_000;
const tracer = () => trace.getTracer("@zero/notifications");

export function startDeliveryWorker(opts: DeliveryWorkerOptions): DeliveryWorker {
  const { db, transport, limit, retry } = opts;
  const logger = opts.logger.child({ component: "delivery-worker" });
  let stopping = false;
  let waiters: (() => void)[] = [];
  let troubled = false;

  const wake = (): void => {
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  const idle = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  async function deliver(trx: Kysely<DB>, row: DeliveryRow): Promise<void> {
    if (row.priority === "transactional") {
      // Never held back (a code the user waits for), but it occupies the slot.
      await limit.occupy(row.recipient, row.id).catch((err: unknown) => {
        logger.debug({ err }, "recipient limit unavailable; transactional mail goes anyway");
      });
    } else {
      const decision = await limit.take(row.recipient, row.id);
      if (!decision.granted) {
        await markRetry(trx, row, {
          status: "deferred",
          nextAttemptAt: new Date(Date.now() + decision.retryAfterMs),
          error: null,
          countAttempt: false,
        });
        logger.debug(
          { delivery_id: row.id, retry_after_ms: decision.retryAfterMs },
          "deferred: recipient limit",
        );
        return;
      }
    }

    const attempt = row.attempts + 1;
    const parent = extractTraceContext((key) => row.trace_headers[key]);
    await tracer().startActiveSpan(
      "send email",
      {
        kind: SpanKind.CLIENT,
        attributes: {
          "notifications.delivery_id": row.id,
          "notifications.template": row.template ?? "",
          "notifications.transport": transport.kind,
          "notifications.attempt": attempt,
          "email.message_id": row.message_id,
        },
      },
      parent,
      async (span) => {
        try {
          const response = await transport.send({
            deliveryId: row.id,
            messageId: row.message_id,
            from: opts.from,
            to: row.recipient,
            subject: row.subject,
            html: row.html_body,
            text: row.text_body,
          });
          await markSent(trx, row, { eraseBody: row.contains_secret });
          logger.info(
            {
              delivery_id: row.id,
              template: row.template,
              to: redactEmail(row.recipient),
              attempt,
              response: redactEmailsIn(response).slice(0, 200),
            },
            "mail sent",
          );
        } catch (error) {
          const failure =
            error instanceof MailSendError
              ? error
              : new MailSendError(String((error as Error)?.message), false, error);
          span.recordException({ name: failure.name, message: redactEmailsIn(failure.message) });
          span.setStatus({ code: SpanStatusCode.ERROR, message: redactEmailsIn(failure.message) });
          await recordFailure(trx, row, attempt, failure);
        } finally {
          span.end();
        }
      },
    );
  }

  async function recordFailure(trx: Kysely<DB>, row: DeliveryRow, attempt: number, failure: MailSendError) {
    const log = { delivery_id: row.id, attempt, error: redactEmailsIn(failure.message) };
    if (failure.permanent) {
      await markFailed(trx, row, failure.message);
      logger.error(log, "mail permanently refused; delivery FAILED");
    } else if (attempt >= retry.maxAttempts) {
      await markFailed(trx, row, `gave up after ${attempt} attempts: ${failure.message}`);
      logger.error(log, "mail still failing after the last attempt; delivery FAILED");
    } else {
      const delay = retryDelayMs(attempt, retry);
      await markRetry(trx, row, {
        status: "queued",
        nextAttemptAt: new Date(Date.now() + delay),
        error: failure.message,
        countAttempt: true,
      });
      logger.warn({ ...log, retry_in_ms: delay }, "mail not sent; will retry");
    }
  }

  /** Takes and handles one due delivery; false when none was due. */
  async function processOne(): Promise<boolean> {
    return db.transaction().execute(async (trx) => {
      const row = await lockNextDueDelivery(trx);
      if (row === undefined) return false;
      wake(); // there may be more: let idle siblings look too
      await deliver(trx, row);
      return true;
    });
  }

  async function slot(index: number): Promise<void> {
    while (!stopping) {
      let worked: boolean;
      try {
        worked = await processOne();
        if (troubled) logger.info("delivery worker recovered");
        troubled = false;
      } catch (err) {
        if (!troubled) logger.warn({ err }, "delivery worker cannot reach Postgres or Redis; retrying");
        troubled = true;
        await idle(TROUBLE_BACKOFF_MS);
        continue;
      }
      // Only the first slot polls; the others sleep until work shows up (a wake) or for long.
      if (!worked && !stopping) await idle(index === 0 ? opts.pollMs : opts.pollMs * 20);
    }
  }

  const slots = Array.from({ length: Math.max(1, opts.concurrency) }, (_, i) => slot(i));
  return {
    wake,
    async stop() {
      stopping = true;
      wake();
      await Promise.all(slots);
    },
  };
}
