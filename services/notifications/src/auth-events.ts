import type { EventHandler } from "@zero/kit/events/consumer";
import {
  EmailVerifiedSchema,
  UserDeletedSchema,
  UserRegisteredSchema,
} from "@zero/proto/zero/auth/v1/events_pb";
import type { DB } from "./db/schema.js";
import { emailProblem, isUuid, normaliseEmail } from "./delivery.js";
import type { MailQueue } from "./mail-queue.js";
import { DEFAULT_LOCALE } from "./template.js";
import { eraseDeadLettersOfUser } from "./dead-letter-store.js";
import { eraseDeliveriesOfUser } from "./delivery-store.js";
import { eraseRecipient, findRecipient, isErased, upsertRecipient } from "./recipient-store.js";

// The consumer of auth's events (durable `notifications-auth-events` on ZERO_AUTH): a new account
// enters the address book and gets the welcome mail, once per event; a verified address replaces
// the one on file; a deleted account leaves the address book, its mail is anonymised and the dead
// letters about it are deleted (GDPR erasure). Each handler runs inside the kit's inbox
// transaction, so its writes and the "handled" mark commit together.

export const AUTH_EVENTS_DURABLE = "notifications-auth-events";

export function createAuthEventHandlers(deps: { queue: MailQueue }): EventHandler<DB>[] {
  const userRegistered: EventHandler<DB, typeof UserRegisteredSchema> = {
    schema: UserRegisteredSchema,
    async handle(event, { trx, eventId, subject }) {
      const email = normaliseEmail(event.email);
      const problem = emailProblem(email);
      // Thrown errors are retried, then dead-lettered: an admin sees them in ListDeadLetters.
      if (problem !== undefined) throw new Error(`UserRegistered ${eventId}: email ${problem}`);
      if (!isUuid(event.userId)) throw new Error(`UserRegistered ${eventId}: user_id is not a UUID`);
      if (await isErased(trx, event.userId)) return; // deleted since: no address book entry, no mail
      await upsertRecipient(trx, {
        user_id: event.userId,
        email,
        first_name: event.firstName,
        last_name: event.lastName,
      });
      await deps.queue.enqueue(trx, {
        idempotencyKey: `event:${eventId}:welcome`,
        fingerprint: eventId,
        source: `event:${subject}`,
        to: email,
        userId: event.userId,
        locale: DEFAULT_LOCALE,
        template: { name: "welcome" },
        variables: { first_name: event.firstName, last_name: event.lastName, email },
        priority: "normal",
      });
    },
  };
  const emailVerified: EventHandler<DB, typeof EmailVerifiedSchema> = {
    schema: EmailVerifiedSchema,
    async handle(event, { trx, eventId }) {
      const email = normaliseEmail(event.email);
      if (!isUuid(event.userId) || emailProblem(email) !== undefined) {
        throw new Error(`EmailVerified ${eventId}: user_id or email is malformed`);
      }
      const known = await findRecipient(trx, event.userId);
      // Unknown user: their UserRegistered (on the same stream, earlier) was never handled —
      // nothing to update; a later registration event brings the address.
      if (known === undefined || known.email === email) return;
      await upsertRecipient(trx, { ...known, email });
    },
  };

  const userDeleted: EventHandler<DB, typeof UserDeletedSchema> = {
    schema: UserDeletedSchema,
    async handle(event, { trx, eventId }) {
      if (!isUuid(event.userId)) throw new Error(`UserDeleted ${eventId}: user_id is not a UUID`);
      const removed = await eraseRecipient(trx, event.userId);
      const emails = removed === undefined ? [] : [removed.email];
      await eraseDeliveriesOfUser(trx, event.userId, emails);
      // After the tombstone: the dead-letter intake checks it under the same per-user lock.
      await eraseDeadLettersOfUser(trx, event.userId, emails);
    },
  };

  return [userRegistered, emailVerified, userDeleted];
}
