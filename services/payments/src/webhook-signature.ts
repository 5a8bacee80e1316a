import { createHmac, timingSafeEqual } from "node:crypto";
import { DomainError } from "@zero/kit/errors";

// The provider signs each webhook as Stripe does: header `webhook-signature: t=<unix seconds>,
// v1=<hex HMAC-SHA256 over "<t>.<raw body>">`, with one `v1=` per secret it currently signs with
// (two while a secret is being rotated). We accept the request when any signature matches any of
// our secrets (current first, then the previous ones still accepted during the rotation), and the
// timestamp is within the tolerance — which bounds how long a captured request can be replayed;
// the event id check bounds it for good.

export const SIGNATURE_HEADER = "webhook-signature";
export const SIGNATURE_TOLERANCE_SECONDS = 300;

const MAX_HEADER_LENGTH = 2048;
const MAX_SIGNATURES = 8;
const SHA256_BYTES = 32;

function hmac(secret: string, timestamp: number, payload: Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(payload).digest();
}

/** The header value the provider sends: one `v1=` per secret. */
export function signWebhook(payload: Uint8Array, secrets: readonly string[], timestamp: number): string {
  return [`t=${timestamp}`, ...secrets.map((s) => `v1=${hmac(s, timestamp, payload).toString("hex")}`)].join(
    ",",
  );
}

function rejected(message: string, reason: string): DomainError {
  return new DomainError("unauthenticated", message, { reason });
}

/** Throws UNAUTHENTICATED unless `header` carries a fresh signature of `payload` by one of `secrets`. */
export function verifyWebhookSignature(opts: {
  header: string | null;
  payload: Uint8Array;
  secrets: readonly string[];
  nowSeconds: number;
  toleranceSeconds?: number;
}): void {
  const tolerance = opts.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS;
  const header = opts.header;
  if (header === null || header === "") {
    throw rejected(`the ${SIGNATURE_HEADER} header is missing`, "WEBHOOK_SIGNATURE_MISSING");
  }
  if (header.length > MAX_HEADER_LENGTH) {
    throw rejected(`the ${SIGNATURE_HEADER} header is too long`, "WEBHOOK_SIGNATURE_INVALID");
  }
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === "t" && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    // Other schemes (v0, …) are ignored, as Stripe's clients do.
    else if (name === "v1" && /^[0-9a-f]{64}$/i.test(value) && signatures.length < MAX_SIGNATURES)
      signatures.push(Buffer.from(value, "hex"));
  }
  if (timestamp === undefined || signatures.length === 0) {
    throw rejected(
      `the ${SIGNATURE_HEADER} header must have the form t=<unix seconds>,v1=<hex hmac>`,
      "WEBHOOK_SIGNATURE_INVALID",
    );
  }
  if (Math.abs(opts.nowSeconds - timestamp) > tolerance) {
    throw rejected(
      `the webhook timestamp is more than ${tolerance} seconds away from now: refusing a stale or replayed request`,
      "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
    );
  }
  // Every comparison runs in constant time; which secret matched is not a secret.
  let matched = false;
  for (const secret of opts.secrets) {
    const expected = hmac(secret, timestamp, opts.payload);
    for (const signature of signatures) {
      if (signature.length === SHA256_BYTES && timingSafeEqual(expected, signature)) matched = true;
    }
  }
  if (!matched) {
    throw rejected("the webhook signature does not match", "WEBHOOK_SIGNATURE_INVALID");
  }
}
