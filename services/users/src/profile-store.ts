import { sql, type Kysely } from "kysely";
import type { DB, ProfileRow } from "./db/schema.js";
import { EMPTY_PROFILE, type ProfileFields } from "./profile.js";

// Queries over `profiles`. Each takes the pool or a transaction (a kysely Transaction is a Kysely).

export async function findProfile(db: Kysely<DB>, userId: string): Promise<ProfileRow | undefined> {
  return db.selectFrom("profiles").selectAll().where("user_id", "=", userId).executeTakeFirst();
}

/**
 * The profile a registration creates. A profile the user already started (an update that beat
 * the event) keeps what they wrote; only names still empty are filled from the registration.
 */
export async function createProfileFromRegistration(
  db: Kysely<DB>,
  userId: string,
  names: Pick<ProfileFields, "first_name" | "last_name">,
): Promise<void> {
  await db
    .insertInto("profiles")
    .values({
      user_id: userId,
      ...EMPTY_PROFILE,
      ...names,
      marketing_consent_updated_at: null,
      updated_at: new Date(),
    })
    .onConflict((oc) =>
      oc.column("user_id").doUpdateSet({
        first_name: sql`case when profiles.first_name = '' then excluded.first_name else profiles.first_name end`,
        last_name: sql`case when profiles.last_name = '' then excluded.last_name else profiles.last_name end`,
      }),
    )
    .execute();
}

/** Writes the whole set of fields, creating the row when the registration's event has not yet. */
export async function saveProfile(
  db: Kysely<DB>,
  userId: string,
  fields: ProfileFields & { marketing_consent_updated_at: Date | null },
): Promise<ProfileRow> {
  const now = new Date();
  return db
    .insertInto("profiles")
    .values({ user_id: userId, ...fields, updated_at: now })
    .onConflict((oc) => oc.column("user_id").doUpdateSet({ ...fields, updated_at: now }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function deleteProfile(db: Kysely<DB>, userId: string): Promise<void> {
  await db.deleteFrom("profiles").where("user_id", "=", userId).execute();
}
