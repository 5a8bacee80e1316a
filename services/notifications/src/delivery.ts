import { createHash } from "node:crypto";
import { DeliveryStatus } from "@zero/proto/zero/notifications/v1/notifications_pb";
import type { DeliveryStatusValue } from "./db/schema.js";

// A delivery (one email) and its rules. Pure: no I/O.
//
//   queued ──send ok──▶ sent
//   queued ──recipient had mail < interval ago──▶ deferred ──due──▶ (taken like queued)
//   queued ──transient failure──▶ queued (next_attempt_at = now + backoff) … ──attempts exhausted──▶ failed
//   queued ──permanent failure (5xx, unbuildable message)──▶ failed ──RetryDelivery──▶ queued

export const PENDING_STATUSES: readonly DeliveryStatusValue[] = ["queued", "deferred"];

const STATUS_TO_PROTO: Record<DeliveryStatusValue, DeliveryStatus> = {
  queued: DeliveryStatus.QUEUED,
  deferred: DeliveryStatus.DEFERRED,
  sent: DeliveryStatus.SENT,
  failed: DeliveryStatus.FAILED,
};

export function statusToProto(status: DeliveryStatusValue): DeliveryStatus {
  return STATUS_TO_PROTO[status];
}

export function statusFromProto(status: DeliveryStatus): DeliveryStatusValue | undefined {
  return (Object.keys(STATUS_TO_PROTO) as DeliveryStatusValue[]).find((s) => STATUS_TO_PROTO[s] === status);
}

export interface RetryPolicy {
  /** Attempts (with a transient failure each) before the delivery is FAILED. */
  maxAttempts: number;
  /** Delay after the first failure; doubles per attempt. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** When to try again after the `attempts`-th failed attempt (1-based); jitter spreads a burst. */
export function retryDelayMs(attempts: number, policy: RetryPolicy, random = Math.random): number {
  const exponential = policy.baseDelayMs * 2 ** Math.max(0, attempts - 1);
  const capped = Math.min(exponential, policy.maxDelayMs);
  // ±10 %: thousands of messages failing together must not all come back in the same second.
  return Math.max(0, Math.round(capped * (0.9 + 0.2 * random())));
}

// Names a caller marks secret by convention (auth's `verification_code`, `reset_code`, …).
const SECRET_SUFFIXES = ["_code", "_token", "_secret", "_password"];
export const REDACTED = "[redacted]";

export function isSecretVariable(name: string, declared: ReadonlySet<string> = new Set()): boolean {
  const lower = name.toLowerCase();
  return (
    declared.has(name) ||
    SECRET_SUFFIXES.some((suffix) => lower.endsWith(suffix) || lower === suffix.slice(1))
  );
}

/** The variables as they may be stored and shown: secret values replaced. */
export function redactVariables(
  variables: Record<string, string>,
  declared: ReadonlySet<string> = new Set(),
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(variables).map(([k, v]) => [k, isSecretVariable(k, declared) ? REDACTED : v]),
  );
}

export const MAX_VARIABLES = 50;
export const MAX_VARIABLE_NAME = 64;
export const MAX_VARIABLE_VALUE = 2000;
export const MAX_IDEMPOTENCY_KEY = 200;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Problems with a request's variables, as one description (undefined when fine). */
export function variablesProblem(variables: Record<string, string>): string | undefined {
  const entries = Object.entries(variables);
  if (entries.length > MAX_VARIABLES) return `must hold at most ${MAX_VARIABLES} entries`;
  for (const [name, value] of entries) {
    if (!VARIABLE_NAME.test(name) || name.length > MAX_VARIABLE_NAME) {
      return `has an invalid name ${JSON.stringify(name.slice(0, MAX_VARIABLE_NAME))}: use letters, digits and _ (at most ${MAX_VARIABLE_NAME})`;
    }
    if (value.length > MAX_VARIABLE_VALUE) {
      return `"${name}" must be at most ${MAX_VARIABLE_VALUE} characters`;
    }
  }
  return undefined;
}

const MAX_EMAIL = 254;
// Deliberately plain: one @, a dot in the domain, no spaces, quotes, angle brackets or commas —
// nothing that could smuggle a second recipient or a header into the envelope.
const EMAIL =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Why `email` (normalised) cannot be a recipient; undefined when it can. */
export function emailProblem(email: string): string | undefined {
  if (email === "") return "is required";
  if (email.length > MAX_EMAIL) return `must be at most ${MAX_EMAIL} characters`;
  if (!EMAIL.test(email)) return "must be an email address such as ada@example.com";
  return undefined;
}

/** For logs: enough to tell messages apart, not enough to identify a person (`a…@example.com`). */
export function redactEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at <= 0) return "…";
  return `${email.slice(0, 1)}…${email.slice(at)}`;
}

/** The RFC 5322 Message-ID: the same on every attempt, so receivers can drop a resend. */
export function messageIdFor(deliveryId: string, domain: string): string {
  return `<${deliveryId}@${domain}>`;
}

/** A stable digest of a request's parameters (key order does not matter). */
export function fingerprintOf(parts: Record<string, unknown>): string {
  return createHash("sha256").update(stableJson(parts)).digest("hex");
}

function stableJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
}

/** `text` with every address in it redacted (SMTP replies often quote the recipient). */
export function redactEmailsIn(text: string): string {
  return text.replace(/[^\s<>"'(),;:@]+@[A-Za-z0-9.-]+/g, (email) => redactEmail(email));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
