import type { JWK_OKP_Public } from "jose";
import type { ColumnType, Insertable, Selectable } from "kysely";

// The auth service's tables as kysely sees them. The kit's outbox/inbox tables live in the same
// database but are reached only through the kit, so they are not declared here.

type CreatedAt = ColumnType<Date, Date | undefined, never>;

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
}

export interface RefreshTokensTable {
  id: string;
  user_id: string;
  // SHA-256 of the token; the token itself is never stored.
  token_hash: Buffer;
  expires_at: Date;
  created_at: CreatedAt;
  // Filled by the sessions issue; nullable until then.
  user_agent: string | null;
  ip: string | null;
}

export type SigningKeyStatus = "active" | "passive" | "retired";

export interface SigningKeysTable {
  kid: string;
  // The public half (kty, crv, x), published by GetJwks. Written as JSON text, read back parsed.
  public_jwk: ColumnType<JWK_OKP_Public, string, never>;
  // PKCS#8 DER of the private key sealed with AES-256-GCM (layout in signing-keys.ts).
  private_key_encrypted: Buffer;
  status: SigningKeyStatus;
  created_at: CreatedAt;
}

export interface DB {
  users: UsersTable;
  refresh_tokens: RefreshTokensTable;
  signing_keys: SigningKeysTable;
}

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type NewRefreshToken = Insertable<RefreshTokensTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
