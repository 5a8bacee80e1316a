import type { DocumentedError } from "./comment-text.js";
import type { JsonSchema } from "./json-schemas.js";

// The HTTP headers of the REST API that no descriptor declares, in one place, each with where the
// behaviour lives. Keep them in step with the code they describe: openapi-document.test.ts checks
// the idempotent methods against the payments service.

/** Response headers, as `components.headers`. */
export const responseHeaders: Record<string, { description: string; schema: JsonSchema }> = {
  // gateway-server.ts (the id), http-exchange.ts / rest-handler.ts (every REST answer).
  "X-Request-Id": {
    description:
      "The request's id: the `X-Request-Id` the client sent when well-formed, else one the gateway made up. It is in the logs and traces of every service the request reached.",
    schema: { type: "string" },
  },
  // gateway-server.ts `admit` (draft-ietf-httpapi-ratelimit-headers-06), when rate limiting is on.
  "RateLimit-Limit": {
    description: "The quota of the most restrictive rate-limit bucket this request counts against.",
    schema: { type: "integer", minimum: 0 },
  },
  "RateLimit-Remaining": {
    description: "Requests left in that bucket.",
    schema: { type: "integer", minimum: 0 },
  },
  "RateLimit-Reset": {
    description: "Seconds until that bucket is full again.",
    schema: { type: "integer", minimum: 0 },
  },
  "RateLimit-Policy": {
    description: "That bucket's policy: `<limit>;w=<window seconds>`, e.g. `100;w=60`.",
    schema: { type: "string", examples: ["100;w=60"] },
  },
  "Retry-After": {
    description:
      "Seconds to wait before retrying, when the gateway's rate limiter refused the request (a service's own throttle says it in the message).",
    schema: { type: "integer", minimum: 1 },
  },
  // Set by payments (payment-service.ts REPLAYED_HEADER), forwarded by rest-handler.ts.
  "Idempotent-Replayed": {
    description:
      "`true` when this answer is the stored result of an earlier request with the same `Idempotency-Key`, replayed: nothing was executed again.",
    schema: { type: "string", enum: ["true"] },
  },
};

export type ResponseHeaderName = keyof typeof responseHeaders;

/** Headers a 429 carries besides X-Request-Id. */
export const rateLimitHeaders: readonly ResponseHeaderName[] = [
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
  "RateLimit-Policy",
  "Retry-After",
];

/** A request header some methods read, with what the method answers about it. */
export interface RequestHeaderConvention {
  /** The `components.parameters` name. */
  readonly component: string;
  readonly parameter: Record<string, unknown>;
  /** `package.Service/Method` of every method that reads it. */
  readonly rpcs: ReadonlySet<string>;
  /** Headers of the method's successful answer. */
  readonly successHeaders: readonly ResponseHeaderName[];
  /** Errors the method answers because of the header. */
  readonly errors: readonly DocumentedError[];
}

/**
 * Payments' idempotency keys: services/payments/src/idempotency.ts (claim, replay, 409/422),
 * applied by payment-service.ts to each method below; the gateway forwards `Idempotency-Key`
 * (rest-handler.ts FORWARDED_HEADERS) and answers `Idempotent-Replayed` (FORWARDED_RESPONSE_HEADERS).
 */
const idempotencyKey: RequestHeaderConvention = {
  component: "IdempotencyKey",
  parameter: {
    name: "Idempotency-Key",
    in: "header",
    required: false,
    description:
      "Makes a retry safe: the first result for this key (success or error) is stored for 24 hours and replayed to every request with the same key and parameters, with `Idempotent-Replayed: true` on a replayed success. 1–255 printable ASCII characters without spaces, unique per caller; a UUID is a good key. Without it the call simply runs.",
    schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[!-~]+$" },
    example: "5f0c8a9e-3b1d-4c2e-9a7f-1d2e3f4a5b6c",
  },
  rpcs: new Set(
    [
      "CreatePayment",
      "ProcessPayment",
      "CancelPayment",
      "DeletePayment",
      "UpdatePaymentStatus",
      "CreateRefund",
    ].map((m) => `zero.payments.v1.PaymentService/${m}`),
  ),
  successHeaders: ["Idempotent-Replayed"],
  errors: [
    {
      status: "INVALID_ARGUMENT",
      httpStatus: undefined,
      text: "the `Idempotency-Key` header is malformed (ErrorInfo reason `IDEMPOTENCY_KEY_INVALID`).",
    },
    {
      status: "ABORTED",
      httpStatus: 409,
      text: "a request with this `Idempotency-Key` is still being processed (ErrorInfo reason `IDEMPOTENCY_KEY_IN_USE`): retry in a moment.",
    },
    {
      status: "INVALID_ARGUMENT",
      httpStatus: 422,
      text: "this `Idempotency-Key` was already used with different parameters or for another method (ErrorInfo reason `IDEMPOTENCY_KEY_REUSED`): send a new key for a new request.",
    },
  ],
};

/**
 * The provider's webhook signature: services/payments/src/webhook-signature.ts; forwarded by the
 * gateway (rest-handler.ts FORWARDED_HEADERS). Its errors are in the method's proto comment.
 */
const webhookSignature: RequestHeaderConvention = {
  component: "WebhookSignature",
  parameter: {
    name: "webhook-signature",
    in: "header",
    required: true,
    description:
      'The provider\'s signature of the raw body: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (one `v1=` per secret during a rotation), at most 5 minutes old.',
    schema: { type: "string", maxLength: 2048 },
  },
  rpcs: new Set(["zero.payments.v1.PaymentService/HandleProviderWebhook"]),
  successHeaders: [],
  errors: [],
};

export const requestHeaderConventions: readonly RequestHeaderConvention[] = [
  idempotencyKey,
  webhookSignature,
];
