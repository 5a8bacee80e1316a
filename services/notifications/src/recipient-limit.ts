import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

// At most one message per recipient per interval (seed 000: one per minute), in Redis so every
// replica shares it. The key holds the delivery that took the slot: the same delivery may take it
// again (a resend after a crash or a transient failure is not a second message). Addresses are
// hashed: Redis holds no personal data.

export type SlotDecision = { granted: true } | { granted: false; retryAfterMs: number };

export interface RecipientLimit {
  /** Takes the recipient's slot for `deliveryId`, or says how long until it frees up. */
  take(recipient: string, deliveryId: string): Promise<SlotDecision>;
  /** Takes the slot unconditionally (transactional mail is never held back, but counts). */
  occupy(recipient: string, deliveryId: string): Promise<void>;
  /** How long until the recipient's slot frees up for another delivery (0 when free); read-only. */
  waitFor(recipient: string): Promise<number>;
}

const TAKE = `
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return -1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return ttl`;

export function createRecipientLimit(deps: { redis: Redis; intervalMs: number }): RecipientLimit {
  const { redis, intervalMs } = deps;
  const keyOf = (recipient: string): string =>
    `notifications:recipient-slot:${createHash("sha256").update(recipient).digest("hex")}`;
  return {
    async take(recipient, deliveryId) {
      const ttl = Number(await redis.eval(TAKE, 1, keyOf(recipient), deliveryId, String(intervalMs)));
      return ttl < 0 ? { granted: true } : { granted: false, retryAfterMs: ttl };
    },
    async occupy(recipient, deliveryId) {
      await redis.set(keyOf(recipient), deliveryId, "PX", intervalMs);
    },
    async waitFor(recipient) {
      return Math.max(0, await redis.pttl(keyOf(recipient)));
    },
  };
}
