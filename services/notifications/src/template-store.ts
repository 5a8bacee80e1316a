import type { Kysely } from "kysely";
import type { DB, TemplateRow, TemplateVersionRow } from "./db/schema.js";

// Queries over `templates` (one row per name and locale, pointing at its active version) and
// `template_versions` (immutable). Each takes the pool or a transaction.

export type TemplateWithVersion = TemplateVersionRow & { description: string; active_version: number };

const withTemplate = (db: Kysely<DB>) =>
  db
    .selectFrom("template_versions as v")
    .innerJoin("templates as t", (j) => j.onRef("t.name", "=", "v.name").onRef("t.locale", "=", "v.locale"))
    .selectAll("v")
    .select(["t.description", "t.active_version"]);

/** The active version of (name, locale). */
export async function findActiveTemplate(
  db: Kysely<DB>,
  name: string,
  locale: string,
): Promise<TemplateWithVersion | undefined> {
  return withTemplate(db)
    .where("v.name", "=", name)
    .where("v.locale", "=", locale)
    .whereRef("v.version", "=", "t.active_version")
    .executeTakeFirst();
}

export async function findTemplateVersion(
  db: Kysely<DB>,
  name: string,
  locale: string,
  version: number,
): Promise<TemplateWithVersion | undefined> {
  return withTemplate(db)
    .where("v.name", "=", name)
    .where("v.locale", "=", locale)
    .where("v.version", "=", version)
    .executeTakeFirst();
}

/** Active versions ordered by (name, locale), after the cursor when given. */
export async function listActiveTemplates(
  db: Kysely<DB>,
  opts: { limit: number; after?: { name: string; locale: string } },
): Promise<TemplateWithVersion[]> {
  let q = withTemplate(db).whereRef("v.version", "=", "t.active_version");
  const after = opts.after;
  if (after !== undefined) {
    q = q.where((eb) =>
      eb.or([
        eb("v.name", ">", after.name),
        eb.and([eb("v.name", "=", after.name), eb("v.locale", ">", after.locale)]),
      ]),
    );
  }
  return q.orderBy("v.name").orderBy("v.locale").limit(opts.limit).execute();
}

export async function lockTemplate(
  db: Kysely<DB>,
  name: string,
  locale: string,
): Promise<TemplateRow | undefined> {
  return db
    .selectFrom("templates")
    .selectAll()
    .where("name", "=", name)
    .where("locale", "=", locale)
    .forUpdate()
    .executeTakeFirst();
}

/** Inserts the template row; false when (name, locale) exists already. */
export async function insertTemplate(
  db: Kysely<DB>,
  row: { name: string; locale: string; description: string },
): Promise<boolean> {
  const inserted = await db
    .insertInto("templates")
    .values({ ...row, active_version: 1, updated_at: new Date() })
    .onConflict((oc) => oc.columns(["name", "locale"]).doNothing())
    .returning("name")
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function insertTemplateVersion(
  db: Kysely<DB>,
  row: Omit<TemplateVersionRow, "created_at">,
): Promise<TemplateVersionRow> {
  return db.insertInto("template_versions").values(row).returningAll().executeTakeFirstOrThrow();
}

export async function activateTemplateVersion(
  db: Kysely<DB>,
  key: { name: string; locale: string },
  version: number,
  description: string | undefined,
): Promise<void> {
  await db
    .updateTable("templates")
    .set({
      active_version: version,
      updated_at: new Date(),
      ...(description === undefined ? {} : { description }),
    })
    .where("name", "=", key.name)
    .where("locale", "=", key.locale)
    .execute();
}
