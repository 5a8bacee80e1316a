import { randomBytes } from "node:crypto";
import type { Logger } from "@zero/kit/log";
import type { CardDetails } from "./card.js";
import type { PaymentMethodName } from "./db/schema.js";
import { signWebhook } from "./webhook-signature.js";

// The payment provider, simulated: the one seam (and the one fake) of this service. A real
// provider (Stripe, Adyen, …) would replace this file behind the same interface. It behaves like
// one from the outside: deterministic test cards, its own ids (`pi_…`, `re_…`), idempotent on the
// key it is given, and asynchronous outcomes delivered later as signed webhooks to the service
// (with retries while the service does not answer 2xx).
//
// Test cards (any expiry in the future, any CVC):
//   4242 4242 4242 4242  succeeds
//   4000 0000 0000 0002  declined            (card_declined)
//   4000 0000 0000 9995  insufficient funds  (insufficient_funds)
//   4000 0000 0000 0119  processing error    (processing_error)
//   4000 0000 0000 3220  completes asynchronously: `processing`, then a payment_intent.succeeded webhook
//   any other valid number succeeds.
// PayPal is approved at once; bank transfers settle asynchronously (webhook), like the async card.

export const TEST_CARDS = {
  succeeds: "4242424242424242",
  declined: "4000000000000002",
  insufficientFunds: "4000000000009995",
  processingError: "4000000000000119",
  asynchronous: "4000000000003220",
} as const;

const FAILURES: Readonly<Record<string, { code: string; message: string }>> = {
  [TEST_CARDS.declined]: { code: "card_declined", message: "Your card was declined." },
  [TEST_CARDS.insufficientFunds]: {
    code: "insufficient_funds",
    message: "Your card has insufficient funds.",
  },
  [TEST_CARDS.processingError]: {
    code: "processing_error",
    message: "An error occurred while processing your card. Try again in a little bit.",
  },
};

export interface ChargeRequest {
  /** The provider deduplicates on it: the same key never charges twice. */
  idempotencyKey: string;
  paymentId: string;
  amount: bigint;
  currency: string;
  method: PaymentMethodName;
  card?: CardDetails;
}

export type ChargeOutcome =
  | { status: "succeeded"; providerPaymentId: string }
  | { status: "pending"; providerPaymentId: string }
  | { status: "failed"; providerPaymentId: string; failureCode: string; failureMessage: string };

/**
 * What the provider knows of the charge made under an idempotency key, as it stands now (an
 * asynchronous charge may have settled since it was answered `pending`). `not_found`: no charge
 * under that key ever reached the provider, so no money moved.
 */
export type ChargeLookup = ChargeOutcome | { status: "not_found" };

export interface RefundRequest {
  idempotencyKey: string;
  providerPaymentId: string;
  amount: bigint;
  currency: string;
}

export type RefundOutcome =
  | { status: "succeeded"; providerRefundId: string }
  | { status: "failed"; providerRefundId: string; failureCode: string };

export interface PaymentProvider {
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  /**
   * The charge made under `idempotencyKey` (the service passes the payment id), for reconciling a
   * payment whose charge's answer was never recorded. Stripe: search PaymentIntents by the
   * `payment_id` metadata (or retrieve by id once known).
   */
  lookupCharge(idempotencyKey: string): Promise<ChargeLookup>;
  refund(request: RefundRequest): Promise<RefundOutcome>;
  /** Cancels webhook deliveries not made yet. */
  close(): void;
}

/** The JSON a provider webhook carries (the subset of Stripe's event this service reads). */
export interface ProviderEvent {
  id: string;
  object: "event";
  type: string;
  /** Unix seconds. */
  created: number;
  data: {
    object: {
      id: string;
      object: "payment_intent";
      amount: number;
      currency: string;
      status: string;
      metadata: Record<string, string>;
      last_payment_error: { code: string; message: string } | null;
    };
  };
}

export interface SimulatedProviderOptions {
  /** The secret(s) it signs webhooks with (all of them during a rotation). */
  webhookSecrets: () => readonly string[];
  /** Sends one signed webhook to the service; rejects unless it answered 2xx. */
  deliver: (body: Uint8Array, signatureHeader: string) => Promise<void>;
  /** How long an asynchronous payment takes to settle. */
  settleDelayMs: number;
  logger: Logger;
  /** Delivery attempts per webhook (default 6: ~6 s of backoff), as providers retry. */
  maxDeliveryAttempts?: number;
}

const REMEMBERED_KEYS = 10_000;

const newId = (prefix: string): string => `${prefix}_${randomBytes(12).toString("hex")}`;

/** A charge as the simulated provider keeps it. */
interface ChargeRecord {
  /** The first answer, replayed to a retried charge with the same key (as Stripe replays it). */
  answer: ChargeOutcome;
  /** Where the charge is now: an asynchronous one moves on from `pending` when it settles. */
  current: ChargeOutcome;
}

export function createSimulatedProvider(opts: SimulatedProviderOptions): PaymentProvider {
  const charges = new Map<string, ChargeRecord>();
  const refunds = new Map<string, RefundOutcome>();
  const timers = new Set<NodeJS.Timeout>();
  const maxAttempts = opts.maxDeliveryAttempts ?? 6;
  let closed = false;

  const remember = <T>(map: Map<string, T>, key: string, value: T): T => {
    map.set(key, value);
    // Insertion order: the oldest key goes first. A real provider keeps keys for 24 h or more.
    if (map.size > REMEMBERED_KEYS) map.delete(map.keys().next().value!);
    return value;
  };

  const later = (ms: number, run: () => void): void => {
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
  };

  const sendWebhook = (event: ProviderEvent, attempt = 1): void => {
    const body = new TextEncoder().encode(JSON.stringify(event));
    const header = signWebhook(body, opts.webhookSecrets(), Math.floor(Date.now() / 1000));
    opts.deliver(body, header).catch((err: unknown) => {
      if (attempt >= maxAttempts) {
        opts.logger.error(
          { err, event_id: event.id, type: event.type },
          "provider: webhook undeliverable, giving up",
        );
        return;
      }
      opts.logger.warn({ err, event_id: event.id, attempt }, "provider: webhook delivery failed, retrying");
      later(Math.min(100 * 2 ** attempt, 5_000), () => sendWebhook(event, attempt + 1));
    });
  };

  const settleLater = (request: ChargeRequest, providerPaymentId: string): void => {
    later(opts.settleDelayMs, () => {
      // Settled on the provider's side first; the webhook only reports it (and may be lost).
      const record = charges.get(request.idempotencyKey);
      if (record) record.current = { status: "succeeded", providerPaymentId };
      sendWebhook({
        id: newId("evt"),
        object: "event",
        type: "payment_intent.succeeded",
        created: Math.floor(Date.now() / 1000),
        data: {
          object: {
            id: providerPaymentId,
            object: "payment_intent",
            amount: Number(request.amount),
            currency: request.currency.toLowerCase(),
            status: "succeeded",
            metadata: { payment_id: request.paymentId },
            last_payment_error: null,
          },
        },
      });
    });
  };

  return {
    charge(request) {
      const known = charges.get(request.idempotencyKey);
      if (known) return Promise.resolve(known.answer);
      const providerPaymentId = newId("pi");
      let outcome: ChargeOutcome;
      if (request.method === "paypal") {
        outcome = { status: "succeeded", providerPaymentId };
      } else if (request.method === "bank_transfer" || request.card?.number === TEST_CARDS.asynchronous) {
        outcome = { status: "pending", providerPaymentId };
        settleLater(request, providerPaymentId);
      } else {
        const failure = request.card ? FAILURES[request.card.number] : undefined;
        outcome = failure
          ? {
              status: "failed",
              providerPaymentId,
              failureCode: failure.code,
              failureMessage: failure.message,
            }
          : { status: "succeeded", providerPaymentId };
      }
      remember(charges, request.idempotencyKey, { answer: outcome, current: outcome });
      return Promise.resolve(outcome);
    },

    lookupCharge(idempotencyKey) {
      // Only as long as it remembers the key (REMEMBERED_KEYS, and this process's life): a key it
      // forgot reads as never charged. See the README on what that means for reconciliation.
      return Promise.resolve(charges.get(idempotencyKey)?.current ?? { status: "not_found" });
    },

    refund(request) {
      const known = refunds.get(request.idempotencyKey);
      if (known) return Promise.resolve(known);
      return Promise.resolve(
        remember(refunds, request.idempotencyKey, { status: "succeeded", providerRefundId: newId("re") }),
      );
    },

    close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
