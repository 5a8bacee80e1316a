import type { Kysely } from "kysely";
import { createHash, randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import type { ClientContext } from "../client-context.js";
import type { DB } from "../db/schema.js";

// The state between a correct password and the second factor: an opaque single-use token
// (256 bits, stored as SHA-256) valid for five minutes and five attempts. It proves the password
// was right, so it is never a way around it; failures also count towards the account's throttle.

export const CHALLENGE_TTL_SECONDS = 300;
export const CHALLENGE_MAX_ATTEMPTS = 5;

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

const hashToken = (token: string) => createHash("sha256").update(token, "utf8").digest();

export async function createChallenge(
  db: Kysely<DB>,
  userId: string,
  client: ClientContext,
): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  await db
    .insertInto("login_challenges")
    .values({
      id: uuidv7(),
      user_id: userId,
      token_hash: hashToken(token),
      expires_at: new Date(Date.now() + CHALLENGE_TTL_SECONDS * 1000),
      ip: client.ip,
      user_agent: client.userAgent,
    })
    .execute();
  return token;
}

/**
 * Counts an attempt on a live challenge and answers it, or undefined when the token is unknown,
 * expired or out of attempts (the challenge is then gone).
 */
export async function attemptChallenge(
  db: Kysely<DB>,
  token: string,
): Promise<{ id: string; userId: string } | undefined> {
  if (!TOKEN.test(token)) return undefined;
  const row = await db
    .updateTable("login_challenges")
    .set((eb) => ({ attempts: eb("attempts", "+", 1) }))
    .where("token_hash", "=", hashToken(token))
    .where("expires_at", ">", new Date())
    .returning(["id", "user_id", "attempts"])
    .executeTakeFirst();
  if (!row) return undefined;
  if (row.attempts > CHALLENGE_MAX_ATTEMPTS) {
    await deleteChallenge(db, row.id);
    return undefined;
  }
  return { id: row.id, userId: row.user_id };
}

export async function deleteChallenge(db: Kysely<DB>, id: string): Promise<void> {
  await db.deleteFrom("login_challenges").where("id", "=", id).execute();
}
