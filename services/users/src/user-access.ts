import { DomainError, invalidArgument } from "@zero/kit/errors";
import type { Principal } from "@zero/kit/principal";

// Whose data a call may touch. A caller reaches their own data (`me` or their own id); an admin
// may read anyone's; nobody changes another's. Any other id answers NOT_FOUND — the same answer
// as an id that does not exist, so a guessed id reveals nothing (no existence oracle).

export type Intent = "read" | "write";

export const ME = "me";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** The user id a call concerns, after checking the caller may touch it that way. */
export function targetUserId(principal: Principal, requested: string, intent: Intent): string {
  const value = requested.trim();
  if (value === "") throw invalidArgument("user_id", "is required: `me` or a user id");
  if (value !== ME && !isUuid(value)) throw invalidArgument("user_id", "must be `me` or a user id (UUID)");
  const self = isUuid(principal.subject) ? principal.subject.toLowerCase() : undefined;
  const id = value === ME ? self : value.toLowerCase();
  if (id === undefined) {
    // A token whose subject is no user (a service): it has no profile of its own.
    throw new DomainError("not_found", "the caller has no user data here: `me` needs a user's access token");
  }
  if (id === self) return id;
  if (principal.roles.includes("admin")) {
    if (intent === "read") return id;
    throw new DomainError(
      "permission_denied",
      "admins may read other users' profiles and addresses, not change them",
      {
        reason: "OWNER_ONLY",
      },
    );
  }
  throw userNotFound(id);
}

/** The one answer for another user's id, whether or not it exists. */
export function userNotFound(id: string): DomainError {
  return new DomainError("not_found", `no profile or addresses for user ${id}`);
}
