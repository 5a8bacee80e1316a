import type { Kysely } from "kysely";
import { createHash, randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import type { DB, OneTimeCodePurpose } from "../db/schema.js";

// Single-use codes sent by email: address verification and password reset. A code is 256 random
// bits (base64url, 43 characters) so it can travel in a link and needs no attempt counter; only
// its SHA-256 is stored. Issuing a code cancels the account's earlier codes of the same purpose,
// and consuming one is a single conditional UPDATE, so a code works at most once even when two
// requests race.

export interface IssuedCode {
  id: string;
  /** Goes into the email only: never stored, logged or put in an event. */
  code: string;
  expiresAt: Date;
}

export interface ConsumedCode {
  userId: string;
  email: string;
}

const CODE = /^[A-Za-z0-9_-]{43}$/;

function hashCode(code: string): Buffer {
  return createHash("sha256").update(code, "utf8").digest();
}

export async function issueCode(
  trx: Kysely<DB>,
  input: { userId: string; email: string; purpose: OneTimeCodePurpose; ttlSeconds: number },
): Promise<IssuedCode> {
  await trx
    .deleteFrom("one_time_codes")
    .where("user_id", "=", input.userId)
    .where("purpose", "=", input.purpose)
    .execute();
  const code = randomBytes(32).toString("base64url");
  const id = uuidv7();
  const expiresAt = new Date(Date.now() + input.ttlSeconds * 1000);
  await trx
    .insertInto("one_time_codes")
    .values({
      id,
      user_id: input.userId,
      purpose: input.purpose,
      code_hash: hashCode(code),
      email: input.email,
      expires_at: expiresAt,
    })
    .execute();
  return { id, code, expiresAt };
}

/** Spends the code when it is valid, unexpired and unused; otherwise answers undefined. */
export async function consumeCode(
  trx: Kysely<DB>,
  input: { code: string; purpose: OneTimeCodePurpose },
): Promise<ConsumedCode | undefined> {
  const code = input.code.trim();
  if (!CODE.test(code)) return undefined;
  const row = await trx
    .updateTable("one_time_codes")
    .set({ used_at: new Date() })
    .where("code_hash", "=", hashCode(code))
    .where("purpose", "=", input.purpose)
    .where("used_at", "is", null)
    .where("expires_at", ">", new Date())
    .returning(["user_id", "email"])
    .executeTakeFirst();
  return row && { userId: row.user_id, email: row.email };
}
