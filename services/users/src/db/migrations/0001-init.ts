import { sql, type Kysely } from "kysely";

// Frozen in time: this migration describes the schema as it was when it shipped. Later changes
// get their own migration; never edit this one after it has run anywhere.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("profiles")
    .addColumn("user_id", "uuid", (c) => c.primaryKey())
    .addColumn("first_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("last_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("display_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("bio", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("avatar_url", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("locale", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("marketing_email", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("marketing_sms", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("marketing_consent_updated_at", "timestamptz")
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    // The application validates; these keep a stray write from storing what it never would.
    .addCheckConstraint("profiles_avatar_https", sql`avatar_url = '' or avatar_url like 'https://%'`)
    .addCheckConstraint(
      "profiles_lengths",
      sql`char_length(first_name) <= 100 and char_length(last_name) <= 100 and char_length(display_name) <= 50
        and char_length(bio) <= 500 and char_length(avatar_url) <= 2048 and char_length(locale) <= 35`,
    )
    .execute();

  await db.schema
    .createTable("addresses")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    // No foreign key to profiles: an address may be added before the profile's event arrives.
    .addColumn("user_id", "uuid", (c) => c.notNull())
    .addColumn("recipient_name", "text", (c) => c.notNull())
    .addColumn("company", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("line1", "text", (c) => c.notNull())
    .addColumn("line2", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("city", "text", (c) => c.notNull())
    .addColumn("region", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("postal_code", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("country_code", "text", (c) => c.notNull())
    .addColumn("phone", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("default_shipping", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("default_billing", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("addresses_country_code", sql`country_code ~ '^[A-Z]{2}$'`)
    .execute();
  // Listing a user's addresses walks this index in id (= creation, UUIDv7) order.
  await db.schema
    .createIndex("addresses_user_id_id_idx")
    .on("addresses")
    .columns(["user_id", "id"])
    .execute();
  // At most one default of each kind per user. The service keeps it so in one transaction; these
  // indexes are the last line of defence.
  await db.schema
    .createIndex("addresses_one_default_shipping")
    .on("addresses")
    .column("user_id")
    .unique()
    .where(sql.ref("default_shipping"), "=", true)
    .execute();
  await db.schema
    .createIndex("addresses_one_default_billing")
    .on("addresses")
    .column("user_id")
    .unique()
    .where(sql.ref("default_billing"), "=", true)
    .execute();

  await db.schema
    .createTable("erased_users")
    .addColumn("user_id_hash", "bytea", (c) => c.primaryKey())
    .addColumn("erased_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("erased_users").execute();
  await db.schema.dropTable("addresses").execute();
  await db.schema.dropTable("profiles").execute();
}
