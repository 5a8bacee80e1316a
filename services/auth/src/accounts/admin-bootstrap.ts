import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UserRegisteredSchema } from "@zero/proto/zero/auth/v1/events_pb";
import type { Kysely } from "kysely";
import { uuidv7 } from "uuidv7";
import {
  emailProblem,
  newPasswordProblem,
  normaliseEmail,
  type PasswordHasher,
} from "../credentials/credentials.js";
import type { DB, UserRow } from "../db/schema.js";
import { recordEvent } from "../events.js";
import { ADMIN_ROLES } from "./roles.js";
import {
  countActiveAdmins,
  findUserByEmail,
  insertUser,
  isDuplicateEmail,
  updateUser,
} from "./user-store.js";

// The first admin never comes from a public endpoint: either configuration
// (AUTH_BOOTSTRAP_ADMIN_EMAIL/PASSWORD, applied at start-up only while no admin exists) or the
// operator's command `main.ts create-admin`. Configuration never promotes an existing account —
// anyone could have registered the configured address first — only the command may, when asked.

export type AdminOutcome = "created" | "promoted" | "already-admin";

export async function createAdmin(
  db: Kysely<DB>,
  hasher: PasswordHasher,
  input: { email: string; password: string; promoteExisting: boolean },
): Promise<{ outcome: AdminOutcome; user: UserRow }> {
  const email = normaliseEmail(input.email);
  const problem = emailProblem(email) ?? newPasswordProblem(input.password, { email });
  if (problem !== undefined) {
    throw new Error(`admin ${emailProblem(email) === undefined ? "password" : "email"} ${problem}`);
  }
  const existing = await findUserByEmail(db, email);
  if (existing) {
    if (existing.roles.includes("admin")) return { outcome: "already-admin", user: existing };
    if (!input.promoteExisting) {
      throw new Error(
        `an account with ${email} exists and is not an admin; run \`main.ts create-admin --promote\` to grant it the role`,
      );
    }
    const roles = [...new Set([...existing.roles, "admin"])];
    return {
      outcome: "promoted",
      user: await updateUser(db, existing.id, { roles, tokens_valid_after: new Date() }),
    };
  }
  const passwordHash = await hasher.hash(input.password);
  try {
    const user = await db.transaction().execute(async (trx) => {
      const row = await insertUser(trx, {
        id: uuidv7(),
        email,
        password_hash: passwordHash,
        first_name: "",
        last_name: "",
        roles: [...ADMIN_ROLES],
        // The operator chose the address.
        email_verified_at: new Date(),
      });
      await recordEvent(trx, UserRegisteredSchema, {
        userId: row.id,
        email: row.email,
        firstName: row.first_name,
        lastName: row.last_name,
        registerTime: timestampFromDate(row.created_at),
      });
      return row;
    });
    return { outcome: "created", user };
  } catch (error) {
    // Another replica created it a moment ago.
    const raced = isDuplicateEmail(error) ? await findUserByEmail(db, email) : undefined;
    if (raced?.roles.includes("admin")) return { outcome: "already-admin", user: raced };
    throw error;
  }
}

/** Start-up: the configured admin, only while there is no active admin at all. */
export async function bootstrapAdmin(
  db: Kysely<DB>,
  hasher: PasswordHasher,
  admin: { email: string; password: string },
): Promise<{ outcome: AdminOutcome | "skipped"; email: string }> {
  if ((await countActiveAdmins(db)) > 0) return { outcome: "skipped", email: normaliseEmail(admin.email) };
  const { outcome, user } = await createAdmin(db, hasher, { ...admin, promoteExisting: false });
  return { outcome, email: user.email };
}
