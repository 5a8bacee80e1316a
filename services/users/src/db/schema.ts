import type { ColumnType, Insertable, Selectable, Updateable } from "kysely";

// The users service's tables as kysely sees them. The kit's inbox/outbox tables live in the same
// database but are reached only through the kit, so they are not declared here.

type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface ProfilesTable {
  // auth's user id: the profile exists for exactly one account.
  user_id: string;
  first_name: string;
  last_name: string;
  display_name: string;
  bio: string;
  // https only; never fetched by the server.
  avatar_url: string;
  // Canonical BCP 47 tag, or "".
  locale: string;
  marketing_email: boolean;
  marketing_sms: boolean;
  // When either marketing consent last changed (GDPR art. 7: the controller must be able to show it).
  marketing_consent_updated_at: Date | null;
  created_at: CreatedAt;
  updated_at: Date;
}

export interface AddressesTable {
  id: string;
  user_id: string;
  recipient_name: string;
  company: string;
  line1: string;
  line2: string;
  city: string;
  region: string;
  postal_code: string;
  country_code: string;
  phone: string;
  default_shipping: boolean;
  default_billing: boolean;
  created_at: CreatedAt;
  updated_at: Date;
}

export interface ErasedUsersTable {
  // SHA-256 of the erased user's id, never the id itself: enough to refuse a late or replayed
  // UserRegistered for that account, and nothing that identifies anyone.
  user_id_hash: Buffer;
  erased_at: CreatedAt;
}

export interface DB {
  profiles: ProfilesTable;
  addresses: AddressesTable;
  erased_users: ErasedUsersTable;
}

export type ProfileRow = Selectable<ProfilesTable>;
export type NewProfile = Insertable<ProfilesTable>;
export type ProfileChanges = Updateable<ProfilesTable>;
export type AddressRow = Selectable<AddressesTable>;
export type NewAddress = Insertable<AddressesTable>;
export type AddressChanges = Updateable<AddressesTable>;
