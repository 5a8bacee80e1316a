import { toJson, type JsonObject } from "@bufbuild/protobuf";
import { AddressSchema, ProfileSchema } from "@zero/proto/zero/users/v1/users_pb";
import type { Kysely } from "kysely";
import { toAddress } from "./address.js";
import { listAllAddresses } from "./address-store.js";
import type { DB } from "./db/schema.js";
import { toProfile } from "./profile.js";
import { findProfile } from "./profile-store.js";

/**
 * Everything this service holds about one user, in the wire's JSON form (the same shape the API
 * answers): the profile (or null) and every address. An erased or unknown user has neither.
 */
export async function collectPersonalData(db: Kysely<DB>, userId: string): Promise<JsonObject> {
  const [profile, addresses] = await Promise.all([findProfile(db, userId), listAllAddresses(db, userId)]);
  const json = { alwaysEmitImplicit: true } as const;
  return {
    profile: profile === undefined ? null : toJson(ProfileSchema, toProfile(profile), json),
    addresses: addresses.map((row) => toJson(AddressSchema, toAddress(row), json)),
  };
}
