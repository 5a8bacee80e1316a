import { DomainError } from "@zero/kit/errors";
import type { Logger } from "@zero/kit/log";
import type { Redis } from "ioredis";
import { createThrottle, type ThrottlePolicy } from "./throttle.js";

// Brute-force protection for everything that checks a password or a second factor (sign-in, the
// second step, change password, 2FA changes, account deletion). Two counters:
//   - per account (keyed by the normalised email, whether or not an account has it, so the
//     behaviour never tells who has one): 5 free failures per hour, then 1 s, 2 s, 4 s … up to
//     15 minutes between attempts — in practice fewer than 20 guesses an hour, and 100 is a hard
//     cap (locked until the hour is over);
//   - per client address: 20 free failures, then the same doubling (credential stuffing spreads
//     guesses over many accounts from few addresses).
// A success clears the account's counter. A locked attempt is refused before any password is
// checked, so a lock also costs the attacker no server CPU.
//
// Loopback addresses have no address counter: such a "client address" is this host itself (a
// developer's machine, a test, a co-located proxy that forwards nothing), where one counter would
// be shared by every client and lock them all out together. The account counter still applies.

const HOUR = 3_600_000;

export const ACCOUNT_POLICY: ThrottlePolicy = {
  name: "login:account",
  windowMs: HOUR,
  freeFailures: 5,
  baseDelayMs: 1000,
  maxDelayMs: 15 * 60_000,
  hardCap: 100,
};

export const ADDRESS_POLICY: ThrottlePolicy = {
  name: "login:ip",
  windowMs: HOUR,
  freeFailures: 20,
  baseDelayMs: 1000,
  maxDelayMs: 15 * 60_000,
  hardCap: 500,
};

export interface LoginThrottle {
  /** Throws `resource_exhausted` (429) while the account or the address is locked. */
  check(email: string, ip: string | null): Promise<void>;
  failed(email: string, ip: string | null): Promise<void>;
  succeeded(email: string): Promise<void>;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** The address to count failures by, or null when there is none worth counting. */
export function countedAddress(ip: string | null): string | null {
  return ip === null || LOOPBACK.test(ip) ? null : ip;
}

export function createLoginThrottle(deps: {
  redis: Redis;
  logger: Logger;
  account?: ThrottlePolicy;
  address?: ThrottlePolicy;
}): LoginThrottle {
  const account = createThrottle({
    redis: deps.redis,
    logger: deps.logger,
    policy: deps.account ?? ACCOUNT_POLICY,
  });
  const address = createThrottle({
    redis: deps.redis,
    logger: deps.logger,
    policy: deps.address ?? ADDRESS_POLICY,
  });
  return {
    async check(email, client) {
      const ip = countedAddress(client);
      const [byAccount, byAddress] = await Promise.all([
        account.retryAfterMs(email),
        ip === null ? 0 : address.retryAfterMs(ip),
      ]);
      const waitMs = Math.max(byAccount, byAddress);
      if (waitMs > 0) throw throttled(waitMs);
    },
    async failed(email, client) {
      const ip = countedAddress(client);
      await Promise.all([account.fail(email), ip === null ? undefined : address.fail(ip)]);
    },
    succeeded: (email) => account.reset(email),
  };
}

export function throttled(waitMs: number, what = "failed sign-in attempts"): DomainError {
  const seconds = Math.ceil(waitMs / 1000);
  return new DomainError(
    "resource_exhausted",
    `too many ${what}: try again in ${seconds} second${seconds === 1 ? "" : "s"} (or reset the password)`,
    { reason: "LOGIN_THROTTLED", retryAfterMs: waitMs },
  );
}
