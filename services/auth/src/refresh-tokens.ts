import { createHash, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import type { DB } from "./db/schema.js";

// Refresh tokens are opaque random strings. Only their SHA-256 is stored: a database leak must not
// hand out live sessions. A fast hash is enough here (unlike passwords) because the token has 256
// bits of entropy — there is nothing to brute-force.

export interface IssuedRefreshToken {
  /** Goes to the client once; never stored, logged or put in an event. */
  token: string;
  expiresAt: Date;
}

export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export async function insertRefreshToken(
  db: Kysely<DB>,
  input: { userId: string; ttlSeconds: number; now?: Date; userAgent?: string | null; ip?: string | null },
): Promise<IssuedRefreshToken> {
  const token = randomBytes(32).toString("base64url");
  const now = input.now ?? new Date();
  const expiresAt = new Date(now.getTime() + input.ttlSeconds * 1000);
  await db
    .insertInto("refresh_tokens")
    .values({
      id: uuidv7(),
      user_id: input.userId,
      token_hash: hashRefreshToken(token),
      expires_at: expiresAt,
      created_at: now,
      user_agent: input.userAgent ?? null,
      ip: input.ip ?? null,
    })
    .execute();
  return { token, expiresAt };
}
