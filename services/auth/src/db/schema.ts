import type { OutboxTables } from "@zero/kit/events/outbox";
import type { JWK_OKP_Public } from "jose";
import type { ColumnType, Insertable, Selectable } from "kysely";

// The auth service's tables as kysely sees them. The kit's outbox table is declared too (its
// published rows are scrubbed when an account is erased, see account-deletion.ts).

type CreatedAt = ColumnType<Date, Date | undefined, never>;
type WithDefault<T> = ColumnType<T, T | undefined, T>;

export type UserStatusValue = "active" | "deactivated";

export interface UsersTable {
  id: string;
  // Normalised (trimmed, lower-cased); unique.
  email: string;
  // argon2id PHC string; the password itself is never stored.
  password_hash: string;
  first_name: string;
  last_name: string;
  roles: string[];
  created_at: CreatedAt;
  status: WithDefault<UserStatusValue>;
  email_verified_at: WithDefault<Date | null>;
  deactivated_at: WithDefault<Date | null>;
  // Access tokens issued (iat) before this instant are refused.
  tokens_valid_after: WithDefault<Date | null>;
  last_login_at: WithDefault<Date | null>;
  password_changed_at: WithDefault<Date | null>;
  totp_secret_sealed: WithDefault<Buffer | null>;
  totp_enabled_at: WithDefault<Date | null>;
  totp_pending_secret_sealed: WithDefault<Buffer | null>;
  // bigint: read back as a string by the kit's pool (see the kit README).
  totp_last_step: ColumnType<string | null, number | null | undefined, number | null>;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  created_at: CreatedAt;
  last_used_at: WithDefault<Date>;
  expires_at: Date;
  ip: string | null;
  user_agent: string | null;
  two_factor: WithDefault<boolean>;
  revoked_at: WithDefault<Date | null>;
  revoke_reason: WithDefault<string | null>;
}

export interface RefreshTokensTable {
  id: string;
  user_id: string;
  session_id: string;
  // SHA-256 of the token; the token itself is never stored.
  token_hash: Buffer;
  expires_at: Date;
  created_at: CreatedAt;
  // The request that created it (kept for compatibility; the session has the latest).
  user_agent: string | null;
  ip: string | null;
  spent_at: WithDefault<Date | null>;
  parent_id: WithDefault<string | null>;
}

export interface RecoveryCodesTable {
  id: string;
  user_id: string;
  code_hash: Buffer;
  created_at: CreatedAt;
  used_at: WithDefault<Date | null>;
}

export type OneTimeCodePurpose = "verify_email" | "reset_password";

export interface OneTimeCodesTable {
  id: string;
  user_id: string;
  purpose: OneTimeCodePurpose;
  code_hash: Buffer;
  email: string;
  created_at: CreatedAt;
  expires_at: Date;
  used_at: WithDefault<Date | null>;
}

export interface LoginChallengesTable {
  id: string;
  user_id: string;
  token_hash: Buffer;
  created_at: CreatedAt;
  expires_at: Date;
  attempts: WithDefault<number>;
  ip: string | null;
  user_agent: string | null;
}

export type SigningKeyStatus = "pending" | "active" | "passive" | "retired";

export interface SigningKeysTable {
  kid: string;
  // The public half (kty, crv, x), published by GetJwks. Written as JSON text, read back parsed.
  public_jwk: ColumnType<JWK_OKP_Public, string, never>;
  // PKCS#8 DER of the private key sealed with AES-256-GCM (layout in sealed-secret.ts).
  private_key_encrypted: Buffer;
  status: SigningKeyStatus;
  created_at: CreatedAt;
  // When it started (pending: will start) signing.
  activate_at: WithDefault<Date | null>;
  // When a passive key leaves the JWKS (or a retired one left it).
  retire_at: WithDefault<Date | null>;
}

export interface DeletedUsersTable {
  id: string;
  deleted_at: CreatedAt;
}

export interface DB extends OutboxTables {
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  recovery_codes: RecoveryCodesTable;
  one_time_codes: OneTimeCodesTable;
  login_challenges: LoginChallengesTable;
  signing_keys: SigningKeysTable;
  deleted_users: DeletedUsersTable;
}

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type SessionRow = Selectable<SessionsTable>;
export type RefreshTokenRow = Selectable<RefreshTokensTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
