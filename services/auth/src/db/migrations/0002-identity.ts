import { sql, type Kysely } from "kysely";

// Frozen in time (see 0001): sessions with rotating refresh-token families, account status and
// verification, TOTP, single-use codes, login challenges, signing-key rotation and the erasure
// tombstones.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("users")
    .addColumn("status", "text", (c) => c.notNull().defaultTo("active"))
    .addColumn("email_verified_at", "timestamptz")
    .addColumn("deactivated_at", "timestamptz")
    // Access tokens issued before this instant are refused (role change, deactivation, reset).
    .addColumn("tokens_valid_after", "timestamptz")
    .addColumn("last_login_at", "timestamptz")
    .addColumn("password_changed_at", "timestamptz")
    // AES-256-GCM sealed TOTP secrets (layout in sealed-secret.ts); pending = enrolment not confirmed.
    .addColumn("totp_secret_sealed", "bytea")
    .addColumn("totp_enabled_at", "timestamptz")
    .addColumn("totp_pending_secret_sealed", "bytea")
    // The last accepted TOTP time step: a code is accepted once, and never an older one.
    .addColumn("totp_last_step", "bigint")
    .execute();
  await sql`alter table users add constraint users_status check (status in ('active', 'deactivated'))`.execute(
    db,
  );
  await db.schema.createIndex("users_created_at_idx").on("users").columns(["created_at", "id"]).execute();

  await db.schema
    .createTable("sessions")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("last_used_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("ip", "text")
    .addColumn("user_agent", "text")
    .addColumn("two_factor", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("revoked_at", "timestamptz")
    .addColumn("revoke_reason", "text")
    .execute();
  await db.schema
    .createIndex("sessions_user_id_idx")
    .on("sessions")
    .columns(["user_id", "last_used_at"])
    .execute();

  // Existing refresh tokens each become a session of their own, so nobody is signed out.
  await db.schema
    .alterTable("refresh_tokens")
    .addColumn("session_id", "uuid", (c) => c.references("sessions.id").onDelete("cascade"))
    // Set when the token was exchanged (or superseded): presenting it again is reuse.
    .addColumn("spent_at", "timestamptz")
    // The token this one replaced.
    .addColumn("parent_id", "uuid")
    .execute();
  await sql`
    insert into sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
    select id, user_id, created_at, created_at, expires_at, ip, user_agent from refresh_tokens`.execute(db);
  await sql`update refresh_tokens set session_id = id`.execute(db);
  await sql`alter table refresh_tokens alter column session_id set not null`.execute(db);
  await db.schema
    .createIndex("refresh_tokens_session_id_idx")
    .on("refresh_tokens")
    .column("session_id")
    .execute();

  await db.schema
    .createTable("recovery_codes")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    // HMAC-SHA256 under a key derived from AUTH_KEY_ENCRYPTION_KEY.
    .addColumn("code_hash", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("used_at", "timestamptz")
    .execute();
  await db.schema.createIndex("recovery_codes_user_id_idx").on("recovery_codes").column("user_id").execute();

  await db.schema
    .createTable("one_time_codes")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("purpose", "text", (c) => c.notNull())
    // SHA-256 of the code (256 random bits: nothing to brute-force).
    .addColumn("code_hash", "bytea", (c) => c.notNull())
    // The address the code was sent to: verifying proves this address, not a later one.
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("used_at", "timestamptz")
    .addCheckConstraint("one_time_codes_purpose", sql`purpose in ('verify_email', 'reset_password')`)
    .execute();
  await db.schema
    .createIndex("one_time_codes_code_hash_key")
    .on("one_time_codes")
    .column("code_hash")
    .unique()
    .execute();
  await db.schema
    .createIndex("one_time_codes_user_id_idx")
    .on("one_time_codes")
    .columns(["user_id", "purpose"])
    .execute();

  await db.schema
    .createTable("login_challenges")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("token_hash", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("ip", "text")
    .addColumn("user_agent", "text")
    .execute();
  await db.schema
    .createIndex("login_challenges_token_hash_key")
    .on("login_challenges")
    .column("token_hash")
    .unique()
    .execute();

  await db.schema
    .alterTable("signing_keys")
    .addColumn("activate_at", "timestamptz")
    .addColumn("retire_at", "timestamptz")
    .execute();
  await sql`update signing_keys set activate_at = created_at where status = 'active'`.execute(db);
  await sql`alter table signing_keys drop constraint signing_keys_status`.execute(db);
  await sql`alter table signing_keys add constraint signing_keys_status check (status in ('pending', 'active', 'passive', 'retired'))`.execute(
    db,
  );

  // What remains of an erased account: the id and when, nothing personal. It lets auth answer
  // "this account existed and was erased" (audit, support) without keeping who it was.
  await db.schema
    .createTable("deleted_users")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("deleted_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("deleted_users").execute();
  await sql`alter table signing_keys drop constraint signing_keys_status`.execute(db);
  await sql`delete from signing_keys where status = 'pending'`.execute(db);
  await sql`alter table signing_keys add constraint signing_keys_status check (status in ('active', 'passive', 'retired'))`.execute(
    db,
  );
  await db.schema.alterTable("signing_keys").dropColumn("activate_at").dropColumn("retire_at").execute();
  await db.schema.dropTable("login_challenges").execute();
  await db.schema.dropTable("one_time_codes").execute();
  await db.schema.dropTable("recovery_codes").execute();
  await db.schema
    .alterTable("refresh_tokens")
    .dropColumn("session_id")
    .dropColumn("spent_at")
    .dropColumn("parent_id")
    .execute();
  await db.schema.dropTable("sessions").execute();
  await sql`alter table users drop constraint users_status`.execute(db);
  await db.schema
    .alterTable("users")
    .dropColumn("status")
    .dropColumn("email_verified_at")
    .dropColumn("deactivated_at")
    .dropColumn("tokens_valid_after")
    .dropColumn("last_login_at")
    .dropColumn("password_changed_at")
    .dropColumn("totp_secret_sealed")
    .dropColumn("totp_enabled_at")
    .dropColumn("totp_pending_secret_sealed")
    .dropColumn("totp_last_step")
    .execute();
}
