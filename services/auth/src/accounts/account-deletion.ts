import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UserDeletedSchema } from "@zero/proto/zero/auth/v1/events_pb";
import { sql, type Transaction } from "kysely";
import type { DB } from "../db/schema.js";
import { recordEvent } from "../events.js";

// Erasure (GDPR art. 17) of what auth holds about an account, in the caller's transaction:
//   - the `users` row, and with it (ON DELETE CASCADE) sessions, refresh tokens, recovery codes,
//     one-time codes and login challenges — email, names, addresses, user agents, secrets;
//   - outbox rows that mention the user id (UserRegistered, UserLoggedIn, …): published ones are
//     kept by the relay for 7 days as an audit aid, and unpublished ones need not reach anyone now
//     — a consumer that never saw the account loses nothing when UserDeleted arrives;
//   - what remains is a `deleted_users` row (id and time: nothing that identifies a person) and the
//     UserDeleted event, which every service receives to erase its own data.
// Not in Postgres: the login throttle's counters in Redis are keyed by a hash of the email and
// expire within the hour; the revocation list holds only ids, for 16 minutes.

export async function eraseAccount(
  trx: Transaction<DB>,
  userId: string,
  now = new Date(),
): Promise<string[]> {
  const open = await trx
    .selectFrom("sessions")
    .select("id")
    .where("user_id", "=", userId)
    .where("revoked_at", "is", null)
    .execute();
  // The id is a field of every event about the account, so its bytes are in the payload.
  await sql`delete from kit_outbox where position(convert_to(${userId}, 'UTF8') in payload) > 0`.execute(trx);
  await trx
    .insertInto("deleted_users")
    .values({ id: userId, deleted_at: now })
    .onConflict((c) => c.doNothing())
    .execute();
  await trx.deleteFrom("users").where("id", "=", userId).execute();
  await recordEvent(trx, UserDeletedSchema, { userId, deleteTime: timestampFromDate(now) });
  return open.map((s) => s.id);
}
