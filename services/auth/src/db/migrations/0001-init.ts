import { sql, type Kysely } from "kysely";

// Frozen in time: this migration describes the schema as it was when it shipped. Later changes
// get their own migration; never edit this one after it has run anywhere.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("password_hash", "text", (c) => c.notNull())
    .addColumn("first_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("last_name", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("roles", sql`text[]`, (c) => c.notNull().defaultTo(sql`'{customer}'`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    // The application normalises; the check keeps a stray write from creating a case-variant
    // duplicate that the unique index below would not see.
    .addCheckConstraint("users_email_normalised", sql`email = lower(btrim(email))`)
    .execute();
  // Named so the service can recognise its violation (23505) and answer already_exists.
  await db.schema.createIndex("users_email_key").on("users").column("email").unique().execute();

  await db.schema
    .createTable("refresh_tokens")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("token_hash", "bytea", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("user_agent", "text")
    .addColumn("ip", "text")
    .execute();
  await db.schema
    .createIndex("refresh_tokens_token_hash_key")
    .on("refresh_tokens")
    .column("token_hash")
    .unique()
    .execute();
  await db.schema.createIndex("refresh_tokens_user_id_idx").on("refresh_tokens").column("user_id").execute();

  await db.schema
    .createTable("signing_keys")
    .addColumn("kid", "text", (c) => c.primaryKey())
    .addColumn("public_jwk", "jsonb", (c) => c.notNull())
    .addColumn("private_key_encrypted", "bytea", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("signing_keys_status", sql`status in ('active', 'passive', 'retired')`)
    .execute();
  // At most one key signs at a time; the advisory lock in signing-keys.ts is the first line of
  // defence, this index the last.
  await db.schema
    .createIndex("signing_keys_one_active")
    .on("signing_keys")
    .expression(sql`(status)`)
    .unique()
    .where(sql.ref("status"), "=", "active")
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("signing_keys").execute();
  await db.schema.dropTable("refresh_tokens").execute();
  await db.schema.dropTable("users").execute();
}
