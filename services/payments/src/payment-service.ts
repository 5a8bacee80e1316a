import { create, toJson } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { DomainError, invalidArguments } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import { createPageTokens } from "@zero/kit/page-token";
import { requirePrincipal } from "@zero/kit/principal";
import {
  CancelPaymentResponseSchema,
  CreatePaymentRequestSchema,
  CreatePaymentResponseSchema,
  CreateRefundResponseSchema,
  DeletePaymentResponseSchema,
  ProcessPaymentResponseSchema,
  UpdatePaymentStatusResponseSchema,
  type PaymentService,
} from "@zero/proto/zero/payments/v1/payments_pb";
import type { Kysely, Transaction } from "kysely";
import { uuidv7 } from "uuidv7";
import { parseCard, summariseCard, type CardDetails } from "./card.js";
import type { DB, PaymentRow } from "./db/schema.js";
import { idempotencyKeyOf, type Idempotency } from "./idempotency.js";
import {
  assertDeletable,
  assertOverridable,
  methodTakesCard,
  refundAmount,
  statusAfterRefund,
} from "./payment.js";
import { newPaymentRow } from "./new-payment.js";
import { appendPaymentRefunded, paymentCreatedEntry } from "./payment-events.js";
import {
  parseCreatePayment,
  parseListPayments,
  parseReason,
  parseStatus,
  requirePaymentId,
} from "./payment-input.js";
import { findPayment, insertPayment, listPayments, listTransitions, updatePayment } from "./payment-store.js";
import { transitionPayment } from "./payment-transition.js";
import { toPayment, toRefund } from "./payment-view.js";
import type { PaymentProvider } from "./provider.js";
import { parseProviderEvent, receiveProviderEvent } from "./provider-webhooks.js";
import { committedRefundTotal, insertRefund, listRefunds, updateRefund } from "./refund-store.js";
import { SIGNATURE_HEADER, verifyWebhookSignature } from "./webhook-signature.js";

export interface PaymentServiceDeps {
  db: Kysely<DB>;
  provider: PaymentProvider;
  idempotency: Idempotency;
  /** Nudges the outbox relay after a commit so events leave now rather than at the next poll. */
  relay: { wake(): void };
  /** Nudges the webhook worker after a provider event was stored. */
  webhooks: { wake(): void };
  /** Secrets the provider's webhooks may be signed with (current first, then those being rotated out). */
  webhookSecrets: () => readonly string[];
  logger: Logger;
  now?: () => Date;
}

/** The response header that marks a replayed idempotent result (as Stripe's `Idempotent-Replayed`). */
export const REPLAYED_HEADER = "idempotent-replayed";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Caller {
  /** The owner id new payments get: the caller's subject, a user id (UUID). */
  subject: string;
  isAdmin: boolean;
  /** Recorded with transitions: `user:<id>`, `admin:<id>`, or a service's subject. */
  actor: string;
}

function callerOf(ctx: HandlerContext): Caller {
  const principal = requirePrincipal(ctx);
  const isAdmin = principal.roles.includes("admin");
  return {
    subject: principal.subject,
    isAdmin,
    actor:
      principal.kind === "service" ? principal.subject : `${isAdmin ? "admin" : "user"}:${principal.subject}`,
  };
}

/** Payments belong to user accounts, whose ids are UUIDs; anything else cannot own one. */
function ownerIdOf(caller: Caller): string {
  if (!UUID.test(caller.subject)) {
    throw new DomainError(
      "permission_denied",
      "payments belong to user accounts: call with a user's access token",
      {
        reason: "USER_REQUIRED",
      },
    );
  }
  return caller.subject.toLowerCase();
}

/** Another user's payment is reported exactly like a missing one: ids must not be probeable. */
function notFound(id: string): DomainError {
  return new DomainError("not_found", `no payment ${id}: check the id or reference`, {
    reason: "PAYMENT_NOT_FOUND",
  });
}

function visible(row: PaymentRow | undefined, caller: Caller, id: string): PaymentRow {
  if (row === undefined || (!caller.isAdmin && row.user_id !== caller.subject.toLowerCase()))
    throw notFound(id);
  return row;
}

/**
 * The email in the caller's access token (the default receipt address). The kit verified the token
 * before the handler runs; this only reads a claim of it.
 */
function tokenEmail(ctx: HandlerContext): string | undefined {
  const token = /^Bearer +([^ ]+)/i.exec(ctx.requestHeader.get("authorization") ?? "")?.[1];
  const payload = token?.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { email?: unknown };
    return typeof claims.email === "string" ? claims.email : undefined;
  } catch {
    return undefined;
  }
}

/** zero.payments.v1.PaymentService: validate → (claim the idempotency key) → transactions → map. */
export function createPaymentService(deps: PaymentServiceDeps): ServiceImpl<typeof PaymentService> {
  const { db, idempotency, provider } = deps;
  const now = deps.now ?? (() => new Date());

  const withTransitions = async (row: PaymentRow, trx: Kysely<DB> = db) =>
    toPayment(row, await listTransitions(trx, row.id));

  /** Locks the payment for a change by `caller`: NOT_FOUND unless it is theirs (or they are admin). */
  const lockVisible = async (trx: Transaction<DB>, id: string, caller: Caller): Promise<PaymentRow> =>
    visible(await findPayment(trx, id, { forUpdate: true }), caller, id);

  return {
    async createPayment(req, ctx) {
      const caller = callerOf(ctx);
      const ownerId = ownerIdOf(caller);
      const input = parseCreatePayment(req, tokenEmail(ctx));
      const row = newPaymentRow(ownerId, input, now());
      // Payment, PaymentCreated and the stored response: one statement, one round trip.
      const { response, replayed } = await idempotency.runInStatement(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "CreatePayment",
          fingerprint: toJson(CreatePaymentRequestSchema, req),
          response: CreatePaymentResponseSchema,
        },
        create(CreatePaymentResponseSchema, { payment: toPayment(row) }),
        (completedKey) =>
          insertPayment(db, row, {
            event: paymentCreatedEntry(row),
            ...(completedKey === undefined ? {} : { completedKey }),
          }),
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async getPayment(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const row = visible(await findPayment(db, id), caller, id);
      return { payment: await withTransitions(row) };
    },

    async listPayments(req, ctx) {
      const caller = callerOf(ctx);
      const query = parseListPayments(req, caller);
      // The effective filters (the owner included): a token works only with the ones it was issued for.
      const filters = {
        ...query.filter,
        createdFrom: query.filter.createdFrom?.toISOString(),
        createdBefore: query.filter.createdBefore?.toISOString(),
      };
      const tokens = createPageTokens({ list: "payments", filters, cursor: { id: "uuid" } });
      const after = tokens.decode(query.pageToken);
      const rows = await listPayments(db, query.filter, {
        ...(after === undefined ? {} : { afterId: after.id }),
        limit: query.pageSize + 1,
      });
      const page = tokens.page(rows, query.pageSize, (row) => ({ id: row.id }));
      return { payments: page.items.map((row) => toPayment(row)), nextPageToken: page.nextPageToken };
    },

    async processPayment(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const card: CardDetails | undefined = req.card === undefined ? undefined : parseCard(req.card, now());
      // Checked before claiming the key, so a request fixed after a 400 may reuse it.
      const current = visible(await findPayment(db, id), caller, id);
      if (current.user_id !== caller.subject.toLowerCase()) {
        // An admin sees every payment but pays none: charging is the owner's act.
        throw new DomainError("permission_denied", "only the payment's owner can process it", {
          reason: "OWNER_REQUIRED",
        });
      }
      if (methodTakesCard(current.method) && card === undefined) {
        throw invalidArguments([
          { field: "card", description: `is required to process a ${current.method} payment` },
        ]);
      }
      if (!methodTakesCard(current.method) && card !== undefined) {
        throw invalidArguments([
          { field: "card", description: `must be absent for a ${current.method} payment` },
        ]);
      }
      const summary = card === undefined ? undefined : summariseCard(card.number);

      const { response, replayed } = await idempotency.run(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "ProcessPayment",
          // Never the number or CVC, not even hashed: a hash of a card number can be brute-forced.
          fingerprint: {
            paymentId: current.id,
            card: card === undefined ? null : { ...summary, expMonth: card.expMonth, expYear: card.expYear },
          },
          response: ProcessPaymentResponseSchema,
        },
        async (commit) => {
          const processing = await db.transaction().execute(async (trx) => {
            const row = await lockVisible(trx, current.id, caller);
            return transitionPayment(trx, row, "processing", {
              actor: caller.actor,
              reason: "processing requested",
              patch: summary === undefined ? {} : { card_brand: summary.brand, card_last4: summary.last4 },
            });
          });
          const outcome = await provider.charge({
            idempotencyKey: processing.id,
            paymentId: processing.id,
            amount: BigInt(processing.amount),
            currency: processing.currency,
            method: processing.method,
            ...(card === undefined ? {} : { card }),
          });
          return db.transaction().execute(async (trx) => {
            let row = await lockVisible(trx, current.id, caller);
            // A webhook may have settled it already; otherwise the provider's answer applies.
            if (row.status === "processing") {
              const patch = { provider_payment_id: outcome.providerPaymentId };
              if (outcome.status === "succeeded") {
                row = await transitionPayment(trx, row, "completed", {
                  actor: "provider",
                  reason: "charge succeeded",
                  patch,
                });
              } else if (outcome.status === "failed") {
                row = await transitionPayment(trx, row, "failed", {
                  actor: "provider",
                  reason: `charge failed: ${outcome.failureCode}`,
                  patch: {
                    ...patch,
                    failure_code: outcome.failureCode,
                    failure_message: outcome.failureMessage,
                  },
                });
              } else {
                row = await updatePayment(trx, row.id, patch);
              }
            } else if (outcome.status === "succeeded" && row.status === "failed") {
              // The charge went through after the reconciliation sweep, finding no record of it at
              // the provider, failed the payment (reconciliation.ts): money taken for a failed
              // payment. Never silently: an operator refunds it at the provider.
              deps.logger.error(
                {
                  paymentId: row.id,
                  providerPaymentId: outcome.providerPaymentId,
                  failureCode: row.failure_code,
                },
                "charge succeeded for a payment already failed: refund it at the provider",
              );
            }
            const response = create(ProcessPaymentResponseSchema, {
              payment: await withTransitions(row, trx),
            });
            await commit(trx, response);
            return response;
          });
        },
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async cancelPayment(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const reason = parseReason(req.reason);
      const { response, replayed } = await idempotency.runInTransaction(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "CancelPayment",
          fingerprint: { id, reason },
          response: CancelPaymentResponseSchema,
        },
        async (trx) => {
          const row = await lockVisible(trx, id, caller);
          const cancelled = await transitionPayment(trx, row, "cancelled", {
            actor: caller.actor,
            reason: reason === "" ? "cancelled" : reason,
          });
          const response = create(CancelPaymentResponseSchema, {
            payment: await withTransitions(cancelled, trx),
          });
          return response;
        },
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async deletePayment(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const { response, replayed } = await idempotency.runInTransaction(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "DeletePayment",
          fingerprint: { id },
          response: DeletePaymentResponseSchema,
        },
        async (trx) => {
          let row = await lockVisible(trx, id, caller);
          assertDeletable(row.status);
          if (row.status === "pending") {
            row = await transitionPayment(trx, row, "cancelled", {
              actor: caller.actor,
              reason: "deleted",
            });
          }
          row = await updatePayment(trx, row.id, { deleted_at: now() });
          const response = create(DeletePaymentResponseSchema, {
            payment: await withTransitions(row, trx),
          });
          return response;
        },
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async updatePaymentStatus(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const status = parseStatus(req.status);
      const reason = parseReason(req.reason, { required: true });
      const { response, replayed } = await idempotency.runInTransaction(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "UpdatePaymentStatus",
          fingerprint: { id, status, reason },
          response: UpdatePaymentStatusResponseSchema,
        },
        async (trx) => {
          const row = await lockVisible(trx, id, caller);
          assertOverridable(row.status, status);
          const updated = await transitionPayment(trx, row, status, {
            actor: caller.actor,
            reason,
            patch:
              status === "failed"
                ? {
                    failure_code: "manual_review",
                    failure_message: "The payment was marked as failed after review.",
                  }
                : {},
          });
          const response = create(UpdatePaymentStatusResponseSchema, {
            payment: await withTransitions(updated, trx),
          });
          return response;
        },
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async createRefund(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      if (req.amount < 0n) {
        throw invalidArguments([
          {
            field: "amount",
            description: "must be a positive number of minor units, or 0 for everything not refunded yet",
          },
        ]);
      }
      const reason = parseReason(req.reason);
      const { response, replayed } = await idempotency.run(
        {
          scope: caller.subject,
          key: idempotencyKeyOf(ctx.requestHeader),
          method: "CreateRefund",
          fingerprint: { id, amount: req.amount, reason },
          response: CreateRefundResponseSchema,
        },
        async (commit) => {
          // 1. Reserve the amount under the payment's lock: concurrent refunds cannot over-refund.
          const { payment, refund } = await db.transaction().execute(async (trx) => {
            const payment = await lockVisible(trx, id, caller);
            const amount = refundAmount({
              status: payment.status,
              amount: BigInt(payment.amount),
              committed: await committedRefundTotal(trx, payment.id),
              requested: req.amount,
            });
            const refund = await insertRefund(trx, {
              id: uuidv7(),
              payment_id: payment.id,
              amount,
              currency: payment.currency,
              reason,
              status: "pending",
              failure_code: null,
              provider_refund_id: null,
              actor: caller.actor,
            });
            return { payment, refund };
          });
          // 2. The provider moves the money (idempotent on the refund id).
          const outcome = await provider.refund({
            idempotencyKey: refund.id,
            providerPaymentId: payment.provider_payment_id ?? payment.id,
            amount: BigInt(refund.amount),
            currency: refund.currency,
          });
          // 3. Record the outcome: the refund's state, the payment's total and status, the event.
          return db.transaction().execute(async (trx) => {
            let row = await lockVisible(trx, id, caller);
            let settled;
            if (outcome.status === "succeeded") {
              settled = await updateRefund(trx, refund.id, {
                status: "succeeded",
                provider_refund_id: outcome.providerRefundId,
              });
              const refunded = BigInt(row.amount_refunded) + BigInt(refund.amount);
              const next = statusAfterRefund(BigInt(row.amount), refunded);
              row =
                next === row.status
                  ? await updatePayment(trx, row.id, { amount_refunded: refunded })
                  : await transitionPayment(trx, row, next, {
                      actor: caller.actor,
                      reason: reason === "" ? `refund ${refund.id}` : reason,
                      patch: { amount_refunded: refunded },
                    });
              await appendPaymentRefunded(trx, row, settled);
            } else {
              settled = await updateRefund(trx, refund.id, {
                status: "failed",
                failure_code: outcome.failureCode,
                provider_refund_id: outcome.providerRefundId,
              });
            }
            const response = create(CreateRefundResponseSchema, {
              refund: toRefund(settled),
              payment: await withTransitions(row, trx),
            });
            await commit(trx, response);
            return response;
          });
        },
      );
      if (replayed) ctx.responseHeader.set(REPLAYED_HEADER, "true");
      else deps.relay.wake();
      return response;
    },

    async listRefunds(req, ctx) {
      const caller = callerOf(ctx);
      const id = requirePaymentId(req.paymentId);
      const row = visible(await findPayment(db, id), caller, id);
      return { refunds: (await listRefunds(db, row.id)).map(toRefund) };
    },

    async handleProviderWebhook(req, ctx) {
      const body = req.rawBody?.data ?? new Uint8Array();
      verifyWebhookSignature({
        header: ctx.requestHeader.get(SIGNATURE_HEADER),
        payload: body,
        secrets: deps.webhookSecrets(),
        nowSeconds: Math.floor(now().getTime() / 1000),
      });
      const event = parseProviderEvent(body);
      const { duplicate } = await receiveProviderEvent(db, event);
      if (!duplicate) deps.webhooks.wake();
      return { received: true, duplicate };
    },
  };
}
